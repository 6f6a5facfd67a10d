/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one lookup-or-insert of the BPF programs, for hash maps whose entries are
 * created by the first packet/event that needs them. */
#ifndef NETPROBE_LOOKUP_H
#define NETPROBE_LOOKUP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NP_EEXIST 17

enum np_lookup_result {
	NP_FOUND,    /* *value points at the existing entry: update it */
	NP_INSERTED, /* init was inserted as the value: nothing left to add */
	NP_FAILED,   /* not found and not inserted (the map is full): count it */
};

/* Inserts init for key, which a lookup just missed; when another CPU inserted it in the
 * meantime, *value is its entry (NP_FOUND). */
static __always_inline enum np_lookup_result np_insert_or_get(void *map, const void *key, const void *init,
							       void **value)
{
	long err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (!err)
		return NP_INSERTED;
	if (err != -NP_EEXIST)
		return NP_FAILED;
	void *v = bpf_map_lookup_elem(map, key);
	if (!v)
		return NP_FAILED;
	*value = v;
	return NP_FOUND;
}

/* The entry of key in map, or a new one holding *init. Another CPU may insert the
 * key between our lookup and our insert (-EEXIST): its entry is then returned. */
static __always_inline enum np_lookup_result np_lookup_or_init(void *map, const void *key, const void *init,
								void **value)
{
	void *v = bpf_map_lookup_elem(map, key);
	if (!v)
		return np_insert_or_get(map, key, init, value);
	*value = v;
	return NP_FOUND;
}

#endif /* NETPROBE_LOOKUP_H */
