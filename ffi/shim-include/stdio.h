#ifndef CORTEX_SHIM_STDIO_H
#define CORTEX_SHIM_STDIO_H
#include <stddef.h>
typedef struct _IO_FILE FILE;
#endif
