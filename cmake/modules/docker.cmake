# Container image checks (label "docker"); no Docker engine needed.
#   docker_lint          dockerfilelint + the image's own rules (lint.sh)
#   docker_runtime_libs  every library the built pruvan-bridge links against
#                        is installed by the runtime stage (ldd + dpkg -S)
# Both exit 77 (skipped) when they cannot run: no npm for the linter, or a
# sanitizer build of the binary, which the image never ships.
# Run: ctest -L docker

add_test(NAME docker_lint
  COMMAND ${PROJECT_SOURCE_DIR}/tests/docker/lint.sh
          ${PROJECT_SOURCE_DIR}/Dockerfile)
set_tests_properties(docker_lint PROPERTIES LABELS docker SKIP_RETURN_CODE 77)

# The pruvan-bridge target is defined by a module that sorts after this one,
# so decide at the end of the directory, once every module has run.
function(pb_docker_add_runtime_libs_test)
  if(TARGET pruvan-bridge)
    set(bin $<TARGET_FILE:pruvan-bridge>)
  else()
    set(bin ${CMAKE_BINARY_DIR}/pruvan-bridge)
  endif()
  add_test(NAME docker_runtime_libs
    COMMAND ${PROJECT_SOURCE_DIR}/tests/docker/check_runtime_libs.sh
            ${bin} ${PROJECT_SOURCE_DIR}/Dockerfile)
  set_tests_properties(docker_runtime_libs PROPERTIES
    LABELS docker SKIP_RETURN_CODE 77)
endfunction()

pb_after_modules(pb_docker_add_runtime_libs_test)
