# Benchmark smoke test (label "bench"): bench/run.sh --smoke pushes ~2,000
# generated events through the worker on the mock cluster, a private
# redis-server and the simulator, enforces no performance target, but fails
# unless every event got exactly one outcome and the mock cluster kept every
# event. The full benchmark is bench/run.sh (docs/benchmarks.md).
# bench_layouts_smoke runs bench/layouts.py on 2,000 events, so the layout
# replay keeps working against the redis-server installed (it exits 1 when
# Redis refuses a setting or answers a command with an error).
# Run: ctest -L bench
#
# The binaries are defined by modules that sort after this one, so the test
# is added at the end of the directory, once every module has run.
find_program(PB_BENCH_KCAT kcat)
find_program(PB_BENCH_REDIS redis-server)
find_program(PB_BENCH_PYTHON3 python3)

function(pb_bench_add_smoke_test)
  if(NOT (TARGET pruvan-bridge AND TARGET pruvan-sim AND TARGET pb-mock-kafka))
    return()
  endif()
  if(NOT (PB_BENCH_KCAT AND PB_BENCH_REDIS AND PB_BENCH_PYTHON3))
    message(STATUS "kcat, redis-server or python3 not found: bench_smoke not registered")
    return()
  endif()
  add_test(NAME bench_smoke
    COMMAND ${PROJECT_SOURCE_DIR}/bench/run.sh --smoke
            --bridge $<TARGET_FILE:pruvan-bridge>
            --sim $<TARGET_FILE:pruvan-sim>
            --mock $<TARGET_FILE:pb-mock-kafka>
            --out ${CMAKE_BINARY_DIR}/bench-smoke)
  set_tests_properties(bench_smoke PROPERTIES LABELS bench TIMEOUT 180)
  add_test(NAME bench_layouts_smoke
    COMMAND ${PB_BENCH_PYTHON3} ${PROJECT_SOURCE_DIR}/bench/layouts.py
            --events 2000 --orders 200 --runs 1)
  set_tests_properties(bench_layouts_smoke PROPERTIES LABELS bench TIMEOUT 60)
endfunction()

pb_after_modules(pb_bench_add_smoke_test)
