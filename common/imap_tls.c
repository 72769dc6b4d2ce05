/* imap_tls: the TLS side of imap_conn (OpenSSL through libevent) */
#include "imap_conn_private.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static void
tls_errstr(char *buf, size_t size)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(last, buf, size);
}

/* Debian's whole CA bundle is ~0.2 MiB */
#define IMAP_TLS_CA_FILE_MAX (16u * 1024 * 1024)

int
imap_tls_ca_file_check(const char *path, char **error_r)
{
	X509_STORE *store;
	struct stat st;
	char ebuf[256];
	int ret = 0;

	/* a FIFO or /dev/zero would be read for ever */
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > IMAP_TLS_CA_FILE_MAX) {
		*error_r = xasprintf("not a regular file of at most %u MiB",
		    IMAP_TLS_CA_FILE_MAX >> 20);
		return -1;
	}
	ERR_clear_error();
	store = X509_STORE_new();
	if (store == NULL || !X509_STORE_load_file(store, path)) {
		tls_errstr(ebuf, sizeof(ebuf));
		*error_r = xasprintf("no certificate could be read from it: %s", ebuf);
		ret = -1;
	}
	X509_STORE_free(store);
	return ret;
}

SSL_CTX *
imap_tls_ctx_new(const struct cfg_connection *cfg, struct imap_error *err)
{
	SSL_CTX *ctx;
	char ebuf[256];

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, cfg->min_tls_version) ||
	    !SSL_CTX_set_max_proto_version(ctx, cfg->max_tls_version))
		goto fail;
	/* OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) above level 0:
	 * when the operator asked for them, make them really work. Debian's
	 * default level 2 also refuses DH groups below 2048 bits: min_dh_size
	 * is the operator's word on that (checked after the handshake), so
	 * level 1 when it allows smaller ones. */
	if (cfg->min_tls_version < TLS1_2_VERSION) {
		SSL_CTX_set_security_level(ctx, 0);
		if (!SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"))
			goto fail;
	} else if (cfg->min_dh_size < 2048 && SSL_CTX_get_security_level(ctx) > 1) {
		SSL_CTX_set_security_level(ctx, 1);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (cfg->tls_verify) {
		if (!SSL_CTX_set_default_verify_paths(ctx))
			goto fail;
		if (cfg->ca_file != NULL &&
		    !SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL)) {
			tls_errstr(ebuf, sizeof(ebuf));
			imap_error_set(err, IMAP_ERR_TLS, "cannot load ca_file %s: %s",
			    cfg->ca_file, ebuf);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
fail:
	tls_errstr(ebuf, sizeof(ebuf));
	imap_error_set(err, IMAP_ERR_TLS, "TLS set-up failed: %s", ebuf);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *
imap_tls_new_ssl(struct imap_conn *conn, struct imap_error *err)
{
	const char *host = conn->cfg->host;
	unsigned char addr[16];
	bool is_ip;
	SSL *ssl;
	char ebuf[256];

	ERR_clear_error();
	ssl = SSL_new(conn->ssl_ctx);
	if (ssl == NULL)
		goto fail;
	is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	if (!is_ip && !SSL_set_tlsext_host_name(ssl, host))
		goto fail;
	if (conn->cfg->tls_verify) {
		if (is_ip) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			if (!X509_VERIFY_PARAM_set1_ip_asc(vp, host))
				goto fail;
		} else if (!SSL_set1_host(ssl, host)) {
			goto fail;
		}
	}
	return ssl;
fail:
	tls_errstr(ebuf, sizeof(ebuf));
	imap_error_set(err, IMAP_ERR_TLS, "TLS set-up failed: %s", ebuf);
	SSL_free(ssl);
	return NULL;
}

/* After a handshake: refuse a finite-field DH key exchange that is smaller
 * than min_dh_size. Returns 0 or -1 with err set. */
int
imap_tls_check_dh(struct imap_conn *conn, struct imap_error *err)
{
	EVP_PKEY *key = NULL;
	int bits;

	if (conn->ssl == NULL || !SSL_get_peer_tmp_key(conn->ssl, &key))
		return 0;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_DH) {
		bits = EVP_PKEY_get_bits(key);
		if (bits < (int)conn->cfg->min_dh_size) {
			EVP_PKEY_free(key);
			imap_error_set(err, IMAP_ERR_TLS,
			    "server's DH key exchange is %d bits, below min_dh_size %u",
			    bits, conn->cfg->min_dh_size);
			return -1;
		}
	}
	EVP_PKEY_free(key);
	return 0;
}

/* Describes why a TLS handshake failed. */
void
imap_tls_describe_failure(struct imap_conn *conn, struct imap_error *err)
{
	char ebuf[256];
	unsigned long e;
	long vr;

	vr = conn->ssl != NULL ? SSL_get_verify_result(conn->ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		ERR_clear_error();
		imap_error_set(err, IMAP_ERR_TLS, "TLS handshake with %s:%u failed: "
		    "certificate verify failed: %s", conn->cfg->host, conn->cfg->port,
		    X509_verify_cert_error_string(vr));
		return;
	}
	/* libevent queues SSL_get_error() codes (lib 0) among OpenSSL's own
	 * error codes: report the first real one */
	ebuf[0] = '\0';
	while ((e = bufferevent_get_openssl_error(conn->bev)) != 0)
		if (ERR_GET_LIB(e) != 0 && ebuf[0] == '\0')
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
	while ((e = ERR_get_error()) != 0)
		if (ERR_GET_LIB(e) != 0 && ebuf[0] == '\0')
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
	if (ebuf[0] == '\0' || strstr(ebuf, "unexpected eof") != NULL)
		snprintf(ebuf, sizeof(ebuf), "the server closed the connection (does it "
		    "accept %s to %s?)", config_tls_version_name(conn->cfg->min_tls_version),
		    config_tls_version_name(conn->cfg->max_tls_version));
	imap_error_set(err, IMAP_ERR_TLS, "TLS handshake with %s:%u failed: %s",
	    conn->cfg->host, conn->cfg->port, ebuf);
}

/* the settings that make a context */
struct tls_key {
	int min_version, max_version;
	bool verify, small_dh;
	char *ca_file;
};

struct imap_tls_cache {
	struct tls_entry {
		struct tls_key key;
		SSL_CTX *ctx;
	} *entries;
	size_t n;
};

static void
tls_key_of(const struct cfg_connection *cfg, struct tls_key *k)
{
	k->min_version = cfg->min_tls_version;
	k->max_version = cfg->max_tls_version;
	k->verify = cfg->tls_verify;
	k->small_dh = cfg->min_dh_size < 2048;
	k->ca_file = cfg->ca_file;
}

static bool
tls_key_same(const struct tls_key *a, const struct tls_key *b)
{
	return a->min_version == b->min_version && a->max_version == b->max_version &&
	    a->verify == b->verify && a->small_dh == b->small_dh &&
	    (a->ca_file == NULL ? b->ca_file == NULL :
	    b->ca_file != NULL && strcmp(a->ca_file, b->ca_file) == 0);
}

struct imap_tls_cache *
imap_tls_cache_new(void)
{
	return xcalloc(1, sizeof(struct imap_tls_cache));
}

SSL_CTX *
imap_tls_cache_get(struct imap_tls_cache *cache, const struct cfg_connection *cfg,
    struct imap_error *err)
{
	struct tls_key k;
	struct tls_entry *e;
	SSL_CTX *ctx;
	size_t i;

	tls_key_of(cfg, &k);
	for (i = 0; i < cache->n; i++) {
		if (tls_key_same(&cache->entries[i].key, &k)) {
			SSL_CTX_up_ref(cache->entries[i].ctx);
			return cache->entries[i].ctx;
		}
	}
	ctx = imap_tls_ctx_new(cfg, err);
	if (ctx == NULL)
		return NULL;
	cache->entries = xreallocarray(cache->entries, cache->n + 1, sizeof(*cache->entries));
	e = &cache->entries[cache->n++];
	e->key = k;
	e->key.ca_file = k.ca_file != NULL ? xstrdup(k.ca_file) : NULL;
	e->ctx = ctx;
	SSL_CTX_up_ref(ctx);
	return ctx;
}

void
imap_tls_cache_free(struct imap_tls_cache **cachep)
{
	struct imap_tls_cache *cache = *cachep;
	size_t i;

	*cachep = NULL;
	if (cache == NULL)
		return;
	for (i = 0; i < cache->n; i++) {
		SSL_CTX_free(cache->entries[i].ctx);
		free(cache->entries[i].key.ca_file);
	}
	free(cache->entries);
	free(cache);
}
