/* Placeholder entry point: the real sandbox lands with issue 4. */
#include <stdio.h>
int main(void) { fputs("kiln-sandbox: not built yet\n", stderr); return 2; }
