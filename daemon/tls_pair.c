/*
 * Client certificate checks (see tls_pair.h), from memory: the caller read
 * the files without blocking (readfile.c) and wipes the key's copy.
 */
#include <errno.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls_pair.h"

/* Never prompt on a terminal for a passphrase: an encrypted key fails. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static int fail(const char **ret_error, const char *why)
{
	*ret_error = why;
	ERR_clear_error();
	return -EINVAL;
}

int tls_pair_check(const char *cert, size_t cert_len, const char *key,
                   size_t key_len, uint8_t ret_digest[TLS_PAIR_DIGEST_LEN],
                   const char **ret_error)
{
	EVP_PKEY *pkey = NULL;
	X509 *x509 = NULL;
	BIO *bio = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned int dlen = 0;
	int r;

	if (cert_len > INT32_MAX || key_len > INT32_MAX)
		return fail(ret_error, "file too large");
	bio = BIO_new_mem_buf(cert, (int)cert_len);
	if (!bio)
		return -ENOMEM;
	x509 = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!x509) {
		r = fail(ret_error, "certFile holds no PEM certificate "
		                    "(-----BEGIN CERTIFICATE-----)");
		goto out;
	}
	bio = BIO_new_mem_buf(key, (int)key_len);
	if (!bio) {
		r = -ENOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!pkey) {
		r = fail(ret_error,
		         memmem(key, key_len, "ENCRYPTED", 9)
		                 ? "keyFile holds an encrypted private key: "
		                   "dsd cannot ask for a passphrase (write it "
		                   "out unencrypted, e.g. with openssl pkey, "
		                   "and "
		                   "protect the file instead)"
		                 : "keyFile holds no PEM private key");
		goto out;
	}
	if (X509_check_private_key(x509, pkey) != 1) {
		r = fail(ret_error, "keyFile is not the private key of "
		                    "certFile's certificate (their public keys "
		                    "differ)");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, cert, cert_len) != 1 ||
	    EVP_DigestUpdate(md, key, key_len) != 1 ||
	    EVP_DigestFinal_ex(md, ret_digest, &dlen) != 1 ||
	    dlen != TLS_PAIR_DIGEST_LEN) {
		ERR_clear_error();
		r = -ENOMEM;
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	X509_free(x509);
	return r;
}
