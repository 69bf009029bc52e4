# Style checks as tests (label "style"), run on the plain build only:
#   style_banned  no sprintf/strcpy/strcat/strtok/atoi/gets (banned.sh)
#   style_format  every C file is clang-format clean (format.sh)
#   style_tidy    clang-tidy with a small, justified set of checks (tidy.sh)
# Run: ctest -L style
add_test(NAME style_banned
  COMMAND ${PROJECT_SOURCE_DIR}/tests/style/banned.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(style_banned PROPERTIES LABELS style)
