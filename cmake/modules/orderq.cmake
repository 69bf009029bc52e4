# Per-order queues (orderq.h): pure, unit-tested, linked by the pipeline.
add_library(pb_orderq STATIC src/pipeline/orderq.c)
target_link_libraries(pb_orderq PUBLIC pb_base)
pb_unit_test(test_orderq tests/unit/test_orderq.c pb_orderq)
