# Style checks as tests (label "style"), run on the plain build only:
#   style_banned  no sprintf/strcpy/strcat/strtok/atoi/gets (banned.sh)
#   style_format  every C file is clang-format clean (format.sh)
#   style_tidy    clang-tidy with a small, justified set of checks (tidy.sh)
# Run: ctest -L style
add_test(NAME style_banned
  COMMAND ${PROJECT_SOURCE_DIR}/tests/style/banned.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(style_banned PROPERTIES LABELS style)

# clang-tidy reads the compile commands of this build (CMakeLists.txt
# exports them); 77 (clang-tidy not installed) is a skip, not a pass.
if(NOT PB_SANITIZE)
  add_test(NAME style_tidy
    COMMAND ${PROJECT_SOURCE_DIR}/tests/style/tidy.sh ${PROJECT_SOURCE_DIR}
            ${PROJECT_BINARY_DIR})
  set_tests_properties(style_tidy PROPERTIES LABELS style
                       SKIP_RETURN_CODE 77)
endif()
add_test(NAME style_format
  COMMAND ${PROJECT_SOURCE_DIR}/tests/style/format.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(style_format PROPERTIES LABELS style SKIP_RETURN_CODE 77)
