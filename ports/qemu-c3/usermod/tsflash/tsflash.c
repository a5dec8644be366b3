// tinysense: a block device for vfs.VfsLfs2 whose storage is a file on the QEMU host.
//
// The RV32 QEMU board has no flash controller; its "flash" is a file that QEMU's
// semihosting opens on the host (relative to QEMU's working directory). Every write goes
// straight to that file, so a littlefs filesystem on it survives a reset, a restart of QEMU
// and a kill of the QEMU process (a power cut), as a real board's flash does. Nothing here
// allocates on the GC heap after construction.
//
//   import tsflash, vfs
//   dev = tsflash.Flash("flash.img", 4096)    # block size; the block count is the file size
//   vfs.mount(vfs.VfsLfs2(dev), "/")

#include <string.h>

#include "py/runtime.h"
#include "py/mperrno.h"
#include "extmod/vfs.h"
#include "shared/runtime/semihosting_rv32.h"

typedef struct _tsflash_obj_t {
    mp_obj_base_t base;
    int handle;
    uint32_t block_size;
    uint32_t blocks;
} tsflash_obj_t;

static const mp_obj_type_t tsflash_type;

// littlefs stamps files with the time; the port has no clock, the host has (seconds).
uint64_t mp_hal_time_ns(void) {
    return (uint64_t)mp_semihosting_time() * 1000000000ULL;
}

static mp_obj_t tsflash_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 2, 2, false);
    const char *path = mp_obj_str_get_str(args[0]);
    mp_int_t bs = mp_obj_get_int(args[1]);
    if (bs < 128 || (bs & (bs - 1)) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("block size must be a power of two >= 128"));
    }
    int h = mp_semihosting_open(path, "r+b");
    if (h < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    int len = mp_semihosting_flen(h);
    if (len < 2 * bs) {
        mp_semihosting_close(h);
        mp_raise_ValueError(MP_ERROR_TEXT("flash file smaller than two blocks"));
    }
    tsflash_obj_t *self = mp_obj_malloc(tsflash_obj_t, type);
    self->handle = h;
    self->block_size = (uint32_t)bs;
    self->blocks = (uint32_t)len / (uint32_t)bs;
    return MP_OBJ_FROM_PTR(self);
}

// Byte range [block * bs + off, + len) must lie inside the file.
static uint32_t tsflash_pos(tsflash_obj_t *self, mp_obj_t block, size_t n_args,
    const mp_obj_t *args, size_t len) {
    uint32_t off = n_args > 3 ? (uint32_t)mp_obj_get_int(args[3]) : 0;
    uint32_t pos = (uint32_t)mp_obj_get_int(block) * self->block_size + off;
    if (pos + len > self->blocks * self->block_size || pos + len < pos) {
        mp_raise_OSError(MP_EIO);
    }
    return pos;
}

static mp_obj_t tsflash_readblocks(size_t n_args, const mp_obj_t *args) {
    tsflash_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_WRITE);
    uint32_t pos = tsflash_pos(self, args[1], n_args, args, buf.len);
    // SYS_READ/SYS_WRITE return the number of bytes NOT transferred
    if (mp_semihosting_seek(self->handle, pos) != 0
        || mp_semihosting_read(self->handle, buf.buf, buf.len) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tsflash_readblocks_obj, 3, 4, tsflash_readblocks);

static mp_obj_t tsflash_writeblocks(size_t n_args, const mp_obj_t *args) {
    tsflash_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_READ);
    uint32_t pos = tsflash_pos(self, args[1], n_args, args, buf.len);
    if (mp_semihosting_seek(self->handle, pos) != 0
        || mp_semihosting_write(self->handle, buf.buf, buf.len) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tsflash_writeblocks_obj, 3, 4, tsflash_writeblocks);

static mp_obj_t tsflash_ioctl(mp_obj_t self_in, mp_obj_t op_in, mp_obj_t arg_in) {
    tsflash_obj_t *self = MP_OBJ_TO_PTR(self_in);
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(self->blocks);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(self->block_size);
        case MP_BLOCKDEV_IOCTL_INIT:
        case MP_BLOCKDEV_IOCTL_DEINIT:
        case MP_BLOCKDEV_IOCTL_SYNC:
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:
            return MP_OBJ_NEW_SMALL_INT(0);
        default:
            return mp_const_none;
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(tsflash_ioctl_obj, tsflash_ioctl);

static const mp_rom_map_elem_t tsflash_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&tsflash_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&tsflash_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&tsflash_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(tsflash_locals, tsflash_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(tsflash_type, MP_QSTR_Flash, MP_TYPE_FLAG_NONE,
    make_new, tsflash_make_new, locals_dict, &tsflash_locals);

static const mp_rom_map_elem_t tsflash_module_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_tsflash) },
    { MP_ROM_QSTR(MP_QSTR_Flash), MP_ROM_PTR(&tsflash_type) },
};
static MP_DEFINE_CONST_DICT(tsflash_module_globals, tsflash_module_table);

const mp_obj_module_t tsflash_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&tsflash_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_tsflash, tsflash_module);
