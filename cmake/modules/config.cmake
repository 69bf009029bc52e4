# Configuration: load, validate (JSON paths in errors), secrets, describe.
add_library(pb_config STATIC src/config.c)
target_include_directories(pb_config PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_config PUBLIC pb_base PkgConfig::JANSSON)

pb_unit_test(test_config tests/unit/test_config.c pb_config)
# So the test also finds its fixtures when run by hand, outside ctest.
target_compile_definitions(test_config PRIVATE
  PB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
