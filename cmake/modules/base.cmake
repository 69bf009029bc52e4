# Foundation tests (errors, logging, helpers).
pb_unit_test(test_base tests/unit/test_base.c pb_base Threads::Threads)

# Outcome and reason codes (outcome.h): part of the foundation, since the
# rules, the state and the pipeline all speak them.
target_sources(pb_base PRIVATE src/core/outcome.c)
pb_unit_test(test_outcome tests/unit/test_outcome.c pb_base)

# The calendar and the one RFC 3339 parser (dates.h): the rules and watch
# both read dates, and must agree on what one is.
target_sources(pb_base PRIVATE src/core/dates.c)
pb_unit_test(test_dates tests/unit/test_dates.c pb_base)
