# PetrelInstall.cmake: what `make install` (cmake --install) puts where.
# Included at the end of CMakeLists.txt. Every path is under PREFIX
# (`make install PREFIX=/usr`, default /usr/local) and DESTDIR:
#
#   PREFIX/sbin/petrel                       the program, mode 0755
#   PREFIX/sbin/sendmail, mailq, newaliases  relative symbolic links to petrel
#   PREFIX/sbin/petrel-postdrop              setgid petreldrop, mode 2755
#                                            (once that target exists)
#   PREFIX/share/man/man8/petrel.8           man pages
#   PREFIX/share/man/man5/petrel.conf.5
#   PREFIX/lib/systemd/system/petrel.service the unit, ExecStart= pointing
#                                            at PREFIX/sbin/petrel
#   PREFIX/share/petrel/contrib/...          logrotate snippet, fail2ban
#                                            filter and jail, the unit as
#                                            shipped (copy by hand to /etc)
#
# Nothing is written outside PREFIX (never /etc, never /var): the spool and
# run_dir are created by `petrel serve`. Ownership is changed only when the
# install runs as root and the group exists (petrel-postdrop), so an
# install into a DESTDIR by an ordinary user works.
include(GNUInstallDirs)

install(TARGETS petrel RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})

# The links sendmail, mailq and newaliases: relative ("petrel"), so that a
# DESTDIR tree can be moved, and replaced if present (a reinstall).
install(CODE "set(PETREL_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")")
install(CODE [[
	foreach(name sendmail mailq newaliases)
		set(link "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${PETREL_SBINDIR}/${name}")
		message(STATUS "Installing: ${link} -> petrel")
		file(REMOVE "${link}")
		file(CREATE_LINK petrel "${link}" SYMBOLIC)
		list(APPEND CMAKE_INSTALL_MANIFEST_FILES
		    "${CMAKE_INSTALL_PREFIX}/${PETREL_SBINDIR}/${name}")
	endforeach()
]])

install(FILES ${CMAKE_SOURCE_DIR}/man/petrel.8
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/man/petrel.conf.5
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

install(FILES ${CMAKE_SOURCE_DIR}/contrib/petrel.service
    ${CMAKE_SOURCE_DIR}/contrib/README.md
    DESTINATION ${CMAKE_INSTALL_DATADIR}/petrel/contrib)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/contrib/logrotate
    ${CMAKE_SOURCE_DIR}/contrib/fail2ban
    DESTINATION ${CMAKE_INSTALL_DATADIR}/petrel/contrib)

# The systemd unit, with ExecStart= naming the petrel just installed: the
# shipped file says /usr/local/sbin/petrel; PREFIX is only known now.
install(CODE "set(PETREL_UNIT_SRC \"${CMAKE_SOURCE_DIR}/contrib/petrel.service\")")
install(CODE "set(PETREL_UNIT_TMP \"${CMAKE_BINARY_DIR}/install-unit\")")
install(CODE [[
	file(READ "${PETREL_UNIT_SRC}" unit)
	string(REPLACE "/usr/local/sbin/petrel"
	    "${CMAKE_INSTALL_PREFIX}/${PETREL_SBINDIR}/petrel" unit "${unit}")
	file(MAKE_DIRECTORY "${PETREL_UNIT_TMP}")
	file(WRITE "${PETREL_UNIT_TMP}/petrel.service" "${unit}")
	# file(INSTALL) puts DESTDIR in front itself.
	file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
	    TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
	    FILES "${PETREL_UNIT_TMP}/petrel.service")
]])

# petrel-postdrop (the maildrop helper, issue 6) is added by its own part
# of CMakeLists.txt; the rule is deferred to the end of the directory so
# that it sees the target wherever it is defined.
function(petrel_install_postdrop)
	if(NOT TARGET petrel-postdrop)
		return()
	endif()
	install(TARGETS petrel-postdrop RUNTIME
	    DESTINATION ${CMAKE_INSTALL_SBINDIR}
	    PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
	    GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE SETGID)
	# chgrp clears the setgid bit (Linux): group first, then the mode.
	install(CODE [[
		set(pd "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${PETREL_SBINDIR}/petrel-postdrop")
		execute_process(COMMAND id -u OUTPUT_VARIABLE uid
		    OUTPUT_STRIP_TRAILING_WHITESPACE)
		execute_process(COMMAND getent group petreldrop
		    RESULT_VARIABLE nogroup OUTPUT_QUIET ERROR_QUIET)
		if(uid STREQUAL "0" AND nogroup EQUAL 0)
			execute_process(COMMAND chgrp petreldrop "${pd}"
			    RESULT_VARIABLE rc)
			if(NOT rc EQUAL 0)
				message(FATAL_ERROR "chgrp petreldrop ${pd} failed")
			endif()
		else()
			message(STATUS "Not root or no group petreldrop: "
			    "${pd} keeps its group; as root: "
			    "chgrp petreldrop ${pd}; chmod 2755 ${pd}")
		endif()
		file(CHMOD "${pd}" PERMISSIONS OWNER_READ OWNER_WRITE
		    OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
		    WORLD_EXECUTE SETGID)
	]])
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR}
    CALL petrel_install_postdrop)
