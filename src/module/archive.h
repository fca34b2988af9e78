/*
 * archive.h - the members and the symbol index of a static archive.
 */
#ifndef EXECMEM_MODULE_ARCHIVE_H
#define EXECMEM_MODULE_ARCHIVE_H

#include "common.h"

/* Archives: the members that are objects, in file order.  A member's name
 * is left where the archive holds it (most are never printed). */
struct mod_member {
	const uint8_t *data;
	size_t size;
	size_t header_offset;         /* of its header in the archive: the index refers to it */
	const char *name;             /* name_len bytes, not NUL-terminated */
	size_t name_len;
};
/* Longest member name kept: a longer one is cut. */
#define MOD_MEMBER_NAME_MAX 255
MOD_HIDDEN int mod_is_archive(const uint8_t *image, size_t size);
/* The member's name into dst (m->name_len + 1 bytes), unprintable bytes
 * as '?', so that messages stay printable. */
MOD_HIDDEN void mod_member_name(char *dst, const struct mod_member *m);
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
