/*
 * archive.h - the members and the symbol index of a static archive.
 */
#ifndef EXECMEM_MODULE_ARCHIVE_H
#define EXECMEM_MODULE_ARCHIVE_H

#include "common.h"

/* Archives: the members that are objects, in file order. */
struct mod_member {
	const uint8_t *data;
	size_t size;
	size_t header_offset;         /* of its header in the archive: the index refers to it */
	char name[256];
};
MOD_HIDDEN int mod_is_archive(const uint8_t *image, size_t size);
MOD_HIDDEN int mod_archive_members(const uint8_t *image, size_t size, const char *archive_name,
				   struct mod_member **members, size_t *count);

/* One entry of an archive's symbol index: a symbol some member defines. */
struct mod_archive_symbol {
	const char *name;             /* in the archive image */
	size_t header_offset;         /* of that member */
};
/*
 * The archive's symbol index ("/" or "/SYM64/"), checked against the image:
 * *symbols is NULL and *count 0 when the archive has none.  Returns 0,
 * -ENOEXEC (malformed) or -ENOMEM, with a message.
 */
MOD_HIDDEN int mod_archive_index(const uint8_t *image, size_t size, const char *archive_name,
				 struct mod_archive_symbol **symbols, size_t *count);

#endif
