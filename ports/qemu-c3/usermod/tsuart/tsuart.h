// tinysense: included into every C file of the RV32 QEMU board (mpconfigboard.mk -include).
#ifndef TSUART_H
#define TSUART_H
void tsuart_poll(void);
// The VM polls the UART for Ctrl-C at branches (every 64th, to keep the cost small).
#define MICROPY_VM_HOOK_LOOP tsuart_poll();
#endif
