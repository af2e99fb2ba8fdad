#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>

const char *testenv_require(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "%s is not set: integration tests run under `make test`, "
                        "which starts the local stack and exports .oms/env\n", name);
        fail();
    }
    return v;
}
