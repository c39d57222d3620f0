/* rc_token — unit tokens: generation, hashing, and the in-memory map from a
 * token's hash to the unit it speaks for.
 *
 * A token is 32 random bytes (OpenSSL RAND_bytes) in base64url without
 * padding, 43 characters.  Only its SHA-256 (hex, 64 characters) is stored
 * in rollcall.unit_token; the clear token is shown once, by
 * `rollcall token issue`, and never logged.
 *
 * A token speaks for its unit's subtree: a village's token for that village
 * only, a township's token for every village beneath it (a township
 * uploading paper forms), see rc_token_covers(). */
#ifndef RC_TOKEN_H
#define RC_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_TOKEN_LEN 43        /* characters of a generated token */
#define RC_TOKEN_HASH_LEN 32   /* SHA-256 */
#define RC_TOKEN_HEX_LEN 64

/* Writes a fresh random token and its NUL into out.  Returns 0, or -1 when
 * the random generator failed (out is then ""). */
int rc_token_generate(char out[RC_TOKEN_LEN + 1]);

/* SHA-256 of the token's bytes. */
void rc_token_hash(const char *token, size_t len, uint8_t out[RC_TOKEN_HASH_LEN]);

/* SHA-256 of the token's bytes as lower-case hex, NUL terminated. */
void rc_token_hash_hex(const char *token, size_t len, char out[RC_TOKEN_HEX_LEN + 1]);

/* Parses 64 hex digits.  Returns 0, or -1 and leaves out unspecified. */
int rc_token_hash_from_hex(const char *hex, uint8_t out[RC_TOKEN_HASH_LEN]);

/* True when a token of unit `scope` may submit for `unit`: the same code,
 * or a code beneath it (scope is a prefix of unit). */
bool rc_token_covers(const char *scope, const char *unit);

/* ---- the map: token hash -> unit code ----
 *
 * Open addressing on the first 16 bytes of the hash (24 bytes a token; a
 * national set of 620,573 tokens takes 24 MiB).  Not thread-safe: the
 * owner serialises access. */

typedef struct rc_token_map rc_token_map;

/* A new, empty map; NULL on out of memory. */
rc_token_map *rc_token_map_new(void);
void rc_token_map_free(rc_token_map *m);

/* Adds the token hash for `unit` (a 2..12 digit code), or changes its unit.
 * Returns 0, or -1 when the code is malformed or memory ran out (the map is
 * then unchanged). */
int rc_token_map_put(rc_token_map *m, const uint8_t hash[RC_TOKEN_HASH_LEN], const char *unit);

/* Makes room for n entries at once (a full load then never holds the old
 * and the doubled table together).  Returns 0, or -1 on out of memory (the
 * map is unchanged and still usable). */
int rc_token_map_reserve(rc_token_map *m, size_t n);

/* Removes a hash; returns whether it was there. */
bool rc_token_map_del(rc_token_map *m, const uint8_t hash[RC_TOKEN_HASH_LEN]);

/* Looks a hash up; on a hit writes the unit code into unit (when not NULL)
 * and returns true. */
bool rc_token_map_get(const rc_token_map *m, const uint8_t hash[RC_TOKEN_HASH_LEN],
                      char unit[13]);

size_t rc_token_map_size(const rc_token_map *m);

/* A full reload in place, without a second copy of the map: after
 * rc_token_map_mark(), every rc_token_map_put() marks its entry as seen, and
 * rc_token_map_sweep() removes the entries not put since the mark, returning
 * how many. */
void rc_token_map_mark(rc_token_map *m);
size_t rc_token_map_sweep(rc_token_map *m);

#endif
