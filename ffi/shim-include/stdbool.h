#ifndef CORTEX_SHIM_STDBOOL_H
#define CORTEX_SHIM_STDBOOL_H
#define bool _Bool
#define true 1
#define false 0
#endif
