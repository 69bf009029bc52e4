# Foundation tests (errors, logging, helpers).
pb_unit_test(test_base tests/unit/test_base.c pb_base Threads::Threads)
