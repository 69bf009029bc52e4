# The worker: pipeline and the pruvan-bridge binary. Named to sort after
# the modules it links (config, core, ops, rules).
add_library(pb_pipeline STATIC src/pipeline.c)
target_link_libraries(pb_pipeline PUBLIC pb_base pb_tracker pb_state pb_pusher
  pb_rules pb_metrics PkgConfig::RDKAFKA PkgConfig::CURL PkgConfig::JANSSON)

add_library(pb_replay STATIC src/replay.c)
target_link_libraries(pb_replay PUBLIC pb_base pb_config PkgConfig::RDKAFKA)

# TEMP-WATCH-STUB (removed once the watch module lands)
if(NOT TARGET pb_watch)
  file(WRITE ${CMAKE_BINARY_DIR}/watch_stub.c "#include \"watch.h\"\npb_err_t pb_watch_run(const pb_config_t *c, bool o, volatile sig_atomic_t *s){(void)c;(void)o;(void)s;return PB_ERR_STATE;}\n")
  add_library(pb_watch STATIC ${CMAKE_BINARY_DIR}/watch_stub.c)
  target_link_libraries(pb_watch PUBLIC pb_base PkgConfig::JANSSON)
endif()
add_executable(pruvan-bridge src/main.c)
target_compile_definitions(pruvan-bridge PRIVATE PB_VERSION="${PROJECT_VERSION}")
target_link_libraries(pruvan-bridge PRIVATE pb_pipeline pb_replay pb_watch pb_ops
  pb_metrics pb_config pb_state pb_base PkgConfig::RDKAFKA PkgConfig::CURL Threads::Threads)
install(TARGETS pruvan-bridge RUNTIME DESTINATION bin)
