# Foundation tests (errors, logging, helpers).
pb_unit_test(test_base tests/unit/test_base.c pb_base Threads::Threads)

# Outcome and reason codes (outcome.h): part of the foundation, since the
# rules, the state and the pipeline all speak them.
target_sources(pb_base PRIVATE src/outcome.c)
pb_unit_test(test_outcome tests/unit/test_outcome.c pb_base)
