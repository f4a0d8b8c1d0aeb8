// libpng 1.6 through one C entry point. libpng reports errors with longjmp, which Swift cannot
// catch, so the setjmp lives here, in C: `swiftclip_png_decode` either fills `result` or returns an
// error code with libpng's message. Only the transforms that Pillow's PNG reader also performs
// are asked of libpng (palette -> RGB, 1/2/4-bit gray -> 8-bit); 16-bit samples are returned as
// they are (big-endian) and reduced in Swift the way Pillow reduces them.
#ifndef SWIFTCLIP_CPNG_SHIM_H
#define SWIFTCLIP_CPNG_SHIM_H

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    SWIFTCLIP_PNG_OK = 0,
    SWIFTCLIP_PNG_ERROR = 1,      // libpng error; message in result->message
    SWIFTCLIP_PNG_TRUNCATED = 2,  // the data ended before the image did
    SWIFTCLIP_PNG_TOO_LARGE = 3,  // header dimensions over the limits; width/height are set
    SWIFTCLIP_PNG_NO_MEMORY = 4,
};

typedef struct {
    uint32_t width, height;
    uint32_t channels;   // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (after palette expansion)
    uint32_t bit_depth;  // 8 or 16 (16-bit samples big-endian)
    uint32_t source_bit_depth;  // as in the file's IHDR (1-bit gray is Pillow's mode "1")
    unsigned char palette[768];   // PLTE of a palette image, RGB triplets (padding uses entry 0)
    int num_palette;
    int color_type;      // as in the file's IHDR
    size_t row_bytes;
    unsigned char *pixels;  // malloc'd, height * row_bytes; the caller frees it with free()
    int truncated;
    size_t truncated_read;  // the size of the read that ran out of data
    char message[256];
} swiftclip_png_result;

typedef struct {
    const unsigned char *data;
    size_t size, offset;
    swiftclip_png_result *result;  // in the caller's memory, so it survives the longjmp
} swiftclip_png_source;

static inline void swiftclip_png_read_fn(png_structp png, png_bytep out, size_t n) {
    swiftclip_png_source *src = (swiftclip_png_source *)png_get_io_ptr(png);
    if (n > src->size - src->offset) {
        src->result->truncated = 1;
        src->result->truncated_read = n;
        png_error(png, "unexpected end of data (truncated file)");
    }
    memcpy(out, src->data + src->offset, n);
    src->offset += n;
}

static inline void swiftclip_png_error_fn(png_structp png, png_const_charp msg) {
    swiftclip_png_source *src = (swiftclip_png_source *)png_get_error_ptr(png);
    strncpy(src->result->message, msg ? msg : "unknown libpng error", 255);
    src->result->message[255] = 0;
    png_longjmp(png, 1);
}

static inline void swiftclip_png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static inline int swiftclip_png_decode(const unsigned char *data, size_t size, uint32_t max_side,
                                       uint64_t max_pixels, swiftclip_png_result *result) {
    memset(result, 0, sizeof(*result));
    swiftclip_png_source src = {data, size, 0, result};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, swiftclip_png_error_fn,
                                             swiftclip_png_warning_fn);
    if (!png) return SWIFTCLIP_PNG_NO_MEMORY;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return SWIFTCLIP_PNG_NO_MEMORY;
    }
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int status = SWIFTCLIP_PNG_OK;
    volatile int image_done = 0;
    if (setjmp(png_jmpbuf(png))) {
        // All pixel rows were read; only what follows them (chunks after the image data, IEND) is
        // missing or damaged. Pillow accepts such files (its load_end stops at a chunk header or
        // CRC it cannot read: 8 or 4 bytes), except when a chunk's data is cut ("Truncated File
        // Read"), and so do we.
        if (image_done && !(result->truncated && result->truncated_read != 8 && result->truncated_read != 4)) {
            free(rows);
            png_destroy_read_struct(&png, &info, NULL);
            result->pixels = pixels;
            result->truncated = 0;
            result->message[0] = 0;
            return SWIFTCLIP_PNG_OK;
        }
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        result->pixels = NULL;
        if (status != SWIFTCLIP_PNG_OK) return status;
        return result->truncated ? SWIFTCLIP_PNG_TRUNCATED : SWIFTCLIP_PNG_ERROR;
    }
    png_set_read_fn(png, &src, swiftclip_png_read_fn);
    // Our own limits are checked below, before anything large is allocated.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    uint32_t width = png_get_image_width(png, info);
    uint32_t height = png_get_image_height(png, info);
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    result->width = width;
    result->height = height;
    result->color_type = color_type;
    result->source_bit_depth = bit_depth;
    if (width > max_side || height > max_side || (uint64_t)width * height > max_pixels) {
        png_destroy_read_struct(&png, &info, NULL);
        return SWIFTCLIP_PNG_TOO_LARGE;
    }

    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int n = 0;
        if (png_get_PLTE(png, info, &plte, &n) && plte && n > 0 && n <= 256) {
            for (int i = 0; i < n; i++) {
                result->palette[3 * i] = plte[i].red;
                result->palette[3 * i + 1] = plte[i].green;
                result->palette[3 * i + 2] = plte[i].blue;
            }
            result->num_palette = n;
        }
        png_set_palette_to_rgb(png);
    }
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    result->channels = png_get_channels(png, info);
    result->bit_depth = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    result->row_bytes = row_bytes;
    if (row_bytes == 0 || height > SIZE_MAX / row_bytes) {
        status = SWIFTCLIP_PNG_NO_MEMORY;
        png_error(png, "image too large for memory");
    }
    pixels = (unsigned char *)malloc(row_bytes * height);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) {
        status = SWIFTCLIP_PNG_NO_MEMORY;
        png_error(png, "out of memory");
    }
    for (uint32_t y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    image_done = 1;
    png_read_end(png, NULL);

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    result->pixels = pixels;
    return SWIFTCLIP_PNG_OK;
}

#endif
