# Worker core: offset tracking, Redis state, Pruvan pusher, pipeline.
add_library(pb_tracker STATIC src/pipeline/tracker.c)
target_link_libraries(pb_tracker PUBLIC pb_base)
pb_unit_test(test_tracker tests/unit/test_tracker.c pb_tracker)

add_library(pb_state STATIC src/io/state.c src/io/state_marks.c
  src/io/state_memo.c src/io/state_pubq.c src/io/state_layout.c)
target_link_libraries(pb_state PUBLIC pb_base pb_config pb_redis_conn PkgConfig::HIREDIS PkgConfig::JANSSON)
# The marks in the order's hash, the order memo, the waiting "published"
# marks and the upgrade window (state_marks.h, state_memo.h, state_pubq.h,
# state_layout.h).
pb_unit_test(test_state_parts tests/unit/test_state_parts.c pb_state)

add_library(pb_pusher STATIC src/io/pusher.c src/io/push_body.c)
target_link_libraries(pb_pusher PUBLIC pb_base PkgConfig::CURL PkgConfig::JANSSON)
pb_unit_test(test_push_body tests/unit/test_push_body.c pb_pusher)

# The one-off sweep that makes order hashes written with an expiry by an
# earlier build stay (state_repair.h); its own thread in `pruvan-bridge run`.
add_library(pb_state_repair STATIC src/io/state_repair.c)
target_link_libraries(pb_state_repair PUBLIC pb_base pb_config pb_redis_conn
  pb_state pb_metrics PkgConfig::HIREDIS Threads::Threads)
function(pb_state_repair_link_it)
  if(TARGET it_test_state_repair)
    target_link_libraries(it_test_state_repair PRIVATE pb_state_repair)
  endif()
endfunction()
pb_after_modules(pb_state_repair_link_it)
