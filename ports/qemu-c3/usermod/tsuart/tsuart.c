// tinysense: Ctrl-C on the UART interrupts running code, as on an esp32 board.
//
// ports/qemu reads its UART (QEMU virt's 16550) only when the REPL asks for a character, so
// a Ctrl-C sent while code runs stays in the UART until the code ends: a host cannot stop
// a running main.py to reach the raw REPL. Here the VM polls the UART at branches (every
// 64th), in time.sleep, and whenever the REPL reads: Ctrl-C (the interrupt char) schedules
// KeyboardInterrupt, any other byte waits in a small ring buffer that stdin reads first.
// The port's own functions are wrapped at link time (ld --wrap), so its source is unchanged.
// Viper and native code do not reach the hook; a long viper kernel is interrupted after it
// returns, as on a board where only bytecode checks for pending exceptions.

#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "shared/runtime/interrupt_char.h"
#include "uart.h"

#define RX_SIZE (256)  // a power of two
static uint8_t rx_buf[RX_SIZE];
static volatile uint32_t rx_head, rx_tail;  // head: next to write; tail: next to read
static uint32_t poll_count;

void __real_uart_init(void);
int __real_mp_hal_stdin_rx_chr(void);
uintptr_t __real_mp_hal_stdio_poll(uintptr_t poll_flags);
void __real_mp_hal_delay_ms(mp_uint_t ms);

static void drain(void) {
    // bytes stay in the UART (and QEMU holds the rest) while the buffer is full
    while (rx_head - rx_tail < RX_SIZE && uart_rx_any()) {
        int c = uart_rx_chr();
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
        } else {
            rx_buf[rx_head++ & (RX_SIZE - 1)] = c;
        }
    }
}

// The port leaves the 16550's FIFOs off, so QEMU hands the guest one received byte per turn
// of its main loop (~4 KB/s from the host with -icount). FCR = enable, clear both FIFOs,
// RX trigger level 14: QEMU then delivers up to 16 bytes per turn.
#define UART_FCR ((volatile uint8_t *)(0x10000000 + 2))

void __wrap_uart_init(void) {
    __real_uart_init();
    *UART_FCR = 0xC7;
}

void tsuart_poll(void) {
    if ((++poll_count & 63) == 0) {
        drain();
    }
}

int __wrap_mp_hal_stdin_rx_chr(void) {
    for (;;) {
        drain();
        if (rx_head != rx_tail) {
            return rx_buf[rx_tail++ & (RX_SIZE - 1)];
        }
        if (mp_interrupt_char != -1) {
            // code is running (sys.stdin.read): a Ctrl-C it waits through raises there
            mp_handle_pending(true);
        }
    }
}

uintptr_t __wrap_mp_hal_stdio_poll(uintptr_t poll_flags) {
    drain();
    uintptr_t ret = __real_mp_hal_stdio_poll(poll_flags & ~MP_STREAM_POLL_RD);
    if ((poll_flags & MP_STREAM_POLL_RD) && rx_head != rx_tail) {
        ret |= MP_STREAM_POLL_RD;
    }
    return ret;
}

void __wrap_mp_hal_delay_ms(mp_uint_t ms) {
    mp_uint_t start = mp_hal_ticks_ms();
    while (mp_hal_ticks_ms() - start < ms) {
        drain();
        mp_handle_pending(true);
    }
    if (!ms) {
        mp_handle_pending(true);
    }
}
