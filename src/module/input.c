/*
 * input.c - the bytes of each input of a load: a file or a descriptor is
 * mapped read-only (the loader copies what it needs, so the page cache's
 * pages are shared and never written), a descriptor that cannot be mapped
 * (a pipe, a socket) is read to its end, a buffer is used where it is.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "input.h"

/* Read at most this much from a descriptor that cannot be mapped. */
#define MAX_STREAM_SIZE ((size_t)1 << 30)

static int read_stream(int fd, struct mod_input *in)
{
	size_t capacity = 1 << 16, size = 0;
	uint8_t *data = malloc(capacity);

	while (data) {
		if (size == capacity) {
			uint8_t *n = capacity < MAX_STREAM_SIZE ? realloc(data, capacity * 2) : NULL;
			if (!n) {
				free(data);
				return capacity < MAX_STREAM_SIZE
					? mod_error(ENOMEM, "%s: out of memory", in->name)
					: mod_error(EFBIG, "%s: more than %zu bytes to read",
						    in->name, capacity);
			}
			data = n;
			capacity *= 2;
		}
		ssize_t got = read(fd, data + size, capacity - size);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int err = errno;
			free(data);
			return mod_error(err, "%s: cannot read: %s", in->name, strerror(err));
		}
		if (got == 0)
			break;
		size += (size_t)got;
	}
	if (!data)
		return mod_error(ENOMEM, "%s: out of memory", in->name);
	in->mapping = data;
	in->mapping_is_heap = 1;
	in->image = data;
	in->size = size;
	return size ? 0 : mod_error(ENOEXEC, "%s: empty input", in->name);
}

static int map_descriptor(int fd, struct mod_input *in)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return mod_error(errno, "%s: %s", in->name, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return mod_error(EISDIR, "%s: is a directory", in->name);
	if (!S_ISREG(st.st_mode))
		return read_stream(fd, in);
	if (st.st_size == 0)
		return mod_error(ENOEXEC, "%s: empty file", in->name);
	void *image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (image == MAP_FAILED)
		return mod_error(errno, "%s: cannot map: %s", in->name, strerror(errno));
	in->mapping = image;
	in->mapping_size = (size_t)st.st_size;
	in->image = image;
	in->size = (size_t)st.st_size;
	return 0;
}

static int open_file(const char *path, struct mod_input *in)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mod_error(errno, "%s: %s", path, strerror(errno));
	int err = map_descriptor(fd, in);
	close(fd);
	return err;
}

static int open_one(const struct execmem_module_input *spec, size_t index, struct mod_input *in)
{
	if (spec->flags & ~(unsigned)EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE)
		return mod_error(EINVAL, "input %zu: unknown flags 0x%x", index, spec->flags);
	in->whole_archive = (spec->flags & EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE) != 0;
	in->name = spec->name;
	switch (spec->kind) {
	case EXECMEM_MODULE_INPUT_FILE:
		if (!spec->path)
			return mod_error(EINVAL, "input %zu: a file input without a path", index);
		if (!in->name)
			in->name = spec->path;
		return open_file(spec->path, in);
	case EXECMEM_MODULE_INPUT_BUFFER:
		if (!spec->data)
			return mod_error(EINVAL, "input %zu: a buffer input without data", index);
		if (!in->name)
			in->name = "<buffer>";
		in->image = spec->data;
		in->size = spec->size;
		return 0;
	case EXECMEM_MODULE_INPUT_FD:
		snprintf(in->default_name, sizeof(in->default_name), "<fd %d>", spec->fd);
		if (!in->name)
			in->name = in->default_name;
		if (spec->fd < 0 || fcntl(spec->fd, F_GETFD) < 0)
			return mod_error(EBADF, "%s: not an open file descriptor", in->name);
		return map_descriptor(spec->fd, in);
	}
	return mod_error(EINVAL, "input %zu: unknown input kind %d", index, (int)spec->kind);
}

int mod_open_inputs(const struct execmem_module_input *inputs, size_t ninputs,
		    struct mod_input **out)
{
	*out = NULL;
	if (!inputs || ninputs == 0)
		return mod_error(EINVAL, "no input to link");
	struct mod_input *opened = calloc(ninputs, sizeof(*opened));
	if (!opened)
		return mod_error(ENOMEM, "out of memory");
	for (size_t i = 0; i < ninputs; i++) {
		int err = open_one(&inputs[i], i, &opened[i]);
		if (err) {
			mod_close_inputs(opened, i + 1);
			return err;
		}
	}
	*out = opened;
	return 0;
}

void mod_close_inputs(struct mod_input *inputs, size_t ninputs)
{
	for (size_t i = 0; inputs && i < ninputs; i++) {
		if (inputs[i].mapping_is_heap)
			free(inputs[i].mapping);
		else if (inputs[i].mapping)
			munmap(inputs[i].mapping, inputs[i].mapping_size);
	}
	free(inputs);
}
