/*
 * testenv.h - helpers shared by the tests: cmocka includes, and for
 * integration tests the local stack's settings (from the environment that
 * `make test` exports out of .oms/env) and service processes to start and kill.
 */
#ifndef OMS_TESTENV_H
#define OMS_TESTENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "oms.h"

/* Returns the environment variable or fails the test with a message saying
 * that integration tests run under `make test`. */
const char *testenv_require(const char *name);

#endif
