#ifndef CORTEX_SHIM_STDLIB_H
#define CORTEX_SHIM_STDLIB_H
#include <stddef.h>
void * malloc(size_t size);
void free(void * ptr);
#endif
