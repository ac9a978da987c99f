/*
 * s3.c - media plugin "s3": files in any S3-compatible object store
 * (AWS S3, MinIO, Ceph RGW, Garage, s3rver...), signed with AWS SigV4.
 *
 * [s3] keys:
 *	endpoint	URL of the service, for example
 *			https://s3.eu-west-1.amazonaws.com or
 *			http://127.0.0.1:9000 (required)
 *	public_endpoint	URL clients reach the store at, used in presigned
 *			URLs (default: endpoint)
 *	region		signing region (default us-east-1)
 *	bucket		bucket name (required)
 *	access_key	default: the AWS_ACCESS_KEY_ID environment variable
 *	secret_key	default: AWS_SECRET_ACCESS_KEY
 *	session_token	default: AWS_SESSION_TOKEN (temporary credentials)
 *	path_style	true: ENDPOINT/BUCKET/KEY; false: virtual-hosted
 *			BUCKET.HOST/KEY (default false)
 *	prefix		key prefix (default "media/")
 *	presign_expiry	seconds a presigned GET URL stays valid
 *			(default 300; 1..604800)
 *	part_size	files larger than this go up as a multipart upload
 *			in parts of this size (default 8m; 5m..5g)
 *	create_bucket	create the bucket at start-up if it is missing
 *			(default false)
 *	timeout_ms	per request (default 60000; 1000..3600000)
 *	verify_tls	check the server's certificate (default true)
 *
 * Objects: PREFIX+ID is the file (with its Content-Type), PREFIX+ID.meta
 * the host's metadata JSON.  Downloads never pass through parleyd: open()
 * answers a presigned GET URL (SigV4 query authentication computed here
 * with OpenSSL HMAC-SHA256), with response-content-type and
 * response-content-disposition signed in when the host asks (open_as).
 *
 * Signing of requests is libcurl's CURLOPT_AWS_SIGV4 ("aws:amz:REGION:s3");
 * curl 7.88 leaves to the caller what this file does: the
 * x-amz-content-sha256 header (the payload hash, computed here), query
 * strings in canonical (sorted) order, and RFC 3986 encoding of keys.
 *
 * Start-up: the bucket is checked (HEAD).  Refused credentials, or a
 * missing bucket without create_bucket, stop start-up with a log line that
 * says which key to fix.  An unreachable store does not: the plugin
 * reports not ready on /readyz and probes with backoff (1 s doubling to
 * 30 s) until it answers; requests that fail to reach it also start the
 * probing.
 *
 * Threads: every media op is a "worker" op.  Each call uses its own curl
 * easy handle; a curl share handle (locked) keeps connections and DNS
 * answers across calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include <parley/plugin.h>

#define S3_BODY_MAX	(PARLEY_MEDIA_META_MAX + 1)	/* response bytes kept */
#define S3_URL_MAX	4096
#define S3_KEY_MAX	1024
#define S3_PARTS_MAX	10000
#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct endpoint {
	char scheme[8];		/* http | https */
	char host[256];		/* host[:port] as in the URL */
	char path[256];		/* path prefix, "" or "/x" (no trailing /) */
};

struct s3 {
	const struct parley_host *host;
	struct parley_ctx *ctx;
	struct endpoint ep, pub;
	char region[64];
	char bucket[64];
	char ak[256], sk[256], token[2048];
	char prefix[256];
	char sigv4[96];
	int path_style;
	long long expiry;
	long long part_size;
	int create_bucket;
	long long timeout_ms;
	int verify_tls;
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	/* health: workers set bad; the loop probes and reports */
	atomic_int bad;
	pthread_mutex_t why_lock;
	char why[512];
	struct parley_timer *tick;
	int probing;
	int ready;
	unsigned backoff_ms;
	int64_t next_probe;
	int probe_ok;
	char probe_why[256];
};

/* One response. */
struct resp {
	long code;		/* HTTP status, 0 = no answer */
	char *body;		/* caller's buffer, may be NULL */
	size_t cap, len;
	int truncated;
	char etag[256];
	char err[CURL_ERROR_SIZE];
};

/* An upload source: a range of a file, or memory. */
struct src {
	int fd;
	off_t off, len, pos;
	const char *mem;
};

/* ------------------------------------------------------------ helpers */

static int
id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return 0;
	for (i = 0; id[i] != '\0'; i++) {
		char c = id[i];

		if (i >= PARLEY_ID_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return i > 0;
}

static void
hex(const unsigned char *in, size_t n, char *out)
{
	static const char h[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = h[in[i] >> 4];
		out[2 * i + 1] = h[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* RFC 3986: everything but unreserved is %XX; '/' kept when slash. */
static int
uri_encode(const char *in, int slash, char *out, size_t len)
{
	static const char h[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~' || (slash && c == '/')) {
			if (o + 1 >= len)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= len)
				return -1;
			out[o++] = '%';
			out[o++] = h[c >> 4];
			out[o++] = h[c & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

static int
sha256_hex_mem(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned ml = 0;

	if (EVP_Digest(p, n, md, &ml, EVP_sha256(), NULL) != 1 || ml != 32)
		return -1;
	hex(md, 32, out);
	return 0;
}

/* SHA-256 of len bytes of fd at off.  0 or -1 (errno). */
static int
sha256_hex_fd(int fd, off_t off, off_t len, char out[65])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char md[32], buf[65536];
	unsigned ml = 0;
	int rc = -1;

	if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
		goto out;
	while (len > 0) {
		size_t want = len > (off_t)sizeof(buf) ? sizeof(buf) :
		    (size_t)len;
		ssize_t n = pread(fd, buf, want, off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;	/* file shrank */
			goto out;
		}
		EVP_DigestUpdate(c, buf, (size_t)n);
		off += n;
		len -= n;
	}
	if (EVP_DigestFinal_ex(c, md, &ml) != 1 || ml != 32)
		goto out;
	hex(md, 32, out);
	rc = 0;
out:
	EVP_MD_CTX_free(c);
	return rc;
}

static int
hmac256(const void *key, size_t kl, const void *d, size_t dl,
    unsigned char out[32])
{
	size_t ol = 0;

	return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kl, d, dl,
	    out, 32, &ol) == NULL || ol != 32 ? -1 : 0;
}

/* "<Tag>value</Tag>" in xml into out; 1 found. */
static int
xml_tag(const char *xml, const char *tag, char *out, size_t len)
{
	char open[64], close[64];
	const char *a, *b;
	size_t n;

	if (xml == NULL)
		return 0;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if ((a = strstr(xml, open)) == NULL)
		return 0;
	a += strlen(open);
	if ((b = strstr(a, close)) == NULL)
		return 0;
	n = (size_t)(b - a);
	if (n >= len)
		n = len - 1;
	memcpy(out, a, n);
	out[n] = '\0';
	return 1;
}

/* A short description of a failed response for the log. */
static void
describe(const struct resp *r, char *out, size_t len)
{
	char code[128], msg[256];

	if (r->code == 0) {
		snprintf(out, len, "%s", r->err[0] ? r->err : "no answer");
		return;
	}
	if (xml_tag(r->body, "Code", code, sizeof(code))) {
		if (!xml_tag(r->body, "Message", msg, sizeof(msg)))
			msg[0] = '\0';
		snprintf(out, len, "HTTP %ld %s%s%s", r->code, code,
		    msg[0] ? ": " : "", msg);
	} else
		snprintf(out, len, "HTTP %ld", r->code);
}

static int
parse_endpoint(const char *url, struct endpoint *ep)
{
	const char *p, *slash;
	size_t n;

	memset(ep, 0, sizeof(*ep));
	if (strncmp(url, "http://", 7) == 0) {
		snprintf(ep->scheme, sizeof(ep->scheme), "http");
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		snprintf(ep->scheme, sizeof(ep->scheme), "https");
		p = url + 8;
	} else
		return -1;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n >= sizeof(ep->host) || memchr(p, '@', n) != NULL ||
	    memchr(p, '?', n) != NULL)
		return -1;
	memcpy(ep->host, p, n);
	ep->host[n] = '\0';
	if (slash != NULL) {
		snprintf(ep->path, sizeof(ep->path), "%s", slash);
		n = strlen(ep->path);
		while (n > 0 && ep->path[n - 1] == '/')
			ep->path[--n] = '\0';
		if (strchr(ep->path, '?') != NULL)
			return -1;
	}
	return 0;
}

/* "8m" -> bytes; -1 if malformed. */
static long long
parse_size(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: return -1;
	}
	return *end == '\0' ? v : -1;
}

/* Host header value and canonical URI of key ("" = the bucket). */
static int
target(const struct s3 *s, const struct endpoint *ep, const char *key,
    char *host, size_t hl, char *uri, size_t ul)
{
	char enc[S3_KEY_MAX * 3 + 1];

	if (uri_encode(key, 1, enc, sizeof(enc)) == -1)
		return -1;
	if (s->path_style) {
		snprintf(host, hl, "%s", ep->host);
		if ((size_t)snprintf(uri, ul, "%s/%s%s%s", ep->path,
		    s->bucket, key[0] ? "/" : "", enc) >= ul)
			return -1;
	} else {
		if ((size_t)snprintf(host, hl, "%s.%s", s->bucket, ep->host)
		    >= hl)
			return -1;
		if ((size_t)snprintf(uri, ul, "%s/%s", ep->path, enc) >= ul)
			return -1;
	}
	return 0;
}

static int
make_url(const struct s3 *s, const char *key, const char *query, char *url,
    size_t len)
{
	char host[512], uri[S3_URL_MAX];

	if (target(s, &s->ep, key, host, sizeof(host), uri, sizeof(uri)) ==
	    -1)
		return -1;
	if ((size_t)snprintf(url, len, "%s://%s%s%s%s", s->ep.scheme, host,
	    uri, query ? "?" : "", query ? query : "") >= len)
		return -1;
	return 0;
}

static int
object_key(const struct s3 *s, const char *id, const char *suffix, char *key,
    size_t len)
{
	if (!id_valid(id))
		return -1;
	return (size_t)snprintf(key, len, "%s%s%s", s->prefix, id, suffix) >=
	    len ? -1 : 0;
}

/* Remember why the store looks unhealthy (any thread). */
static void
mark_bad(struct s3 *s, const char *why)
{
	pthread_mutex_lock(&s->why_lock);
	snprintf(s->why, sizeof(s->why), "%s", why);
	pthread_mutex_unlock(&s->why_lock);
	atomic_store(&s->bad, 1);
}

/* ------------------------------------------------------------ curl */

static void
share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *arg)
{
	struct s3 *s = arg;

	(void)h;
	(void)a;
	pthread_mutex_lock(&s->locks[d]);
}

static void
share_unlock(CURL *h, curl_lock_data d, void *arg)
{
	struct s3 *s = arg;

	(void)h;
	pthread_mutex_unlock(&s->locks[d]);
}

static size_t
on_write(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n, room;

	if (r->body == NULL)
		return len;
	room = r->cap - 1 - r->len;
	if (len > room) {
		r->truncated = 1;
		len = room;
	}
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n, i;

	if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
		const char *v = p + 5;
		size_t vl = len - 5;

		while (vl > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
		    v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(r->etag))
			vl = sizeof(r->etag) - 1;
		for (i = 0; i < vl; i++)
			r->etag[i] = v[i];
		r->etag[vl] = '\0';
	}
	return len;
}

static size_t
on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct src *s = arg;
	size_t want = size * n;
	off_t left = s->len - s->pos;
	ssize_t got;

	if (left <= 0)
		return 0;
	if ((off_t)want > left)
		want = (size_t)left;
	if (s->mem != NULL) {
		memcpy(buf, s->mem + s->pos, want);
		s->pos += (off_t)want;
		return want;
	}
	do
		got = pread(s->fd, buf, want, s->off + s->pos);
	while (got == -1 && errno == EINTR);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	s->pos += got;
	return (size_t)got;
}

/*
 * One signed request.  method GET, HEAD, PUT, POST or DELETE; src the
 * body (PUT/POST) or NULL; sha the payload's SHA-256 (hex); headers extra
 * header lines or NULL.  Returns 0 when the server answered (r->code), -1
 * when it could not be reached (r->err).  Transport failures and 5xx
 * answers mark the store unhealthy.
 */
static int
request(struct s3 *s, const char *method, const char *url, struct src *src,
    const char *sha, const char *const *headers, struct resp *r)
{
	CURL *h;
	struct curl_slist *hl = NULL, *t;
	char line[2200];
	CURLcode rc;
	size_t i;

	r->code = 0;
	r->len = 0;
	r->truncated = 0;
	r->etag[0] = '\0';
	r->err[0] = '\0';
	if (r->body != NULL && r->cap > 0)
		r->body[0] = '\0';
	if ((h = curl_easy_init()) == NULL) {
		snprintf(r->err, sizeof(r->err), "curl_easy_init failed");
		return -1;
	}
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
	hl = curl_slist_append(hl, line);
	if (s->token[0] != '\0') {
		snprintf(line, sizeof(line), "x-amz-security-token: %s",
		    s->token);
		hl = curl_slist_append(hl, line);
	}
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		if ((t = curl_slist_append(hl, headers[i])) != NULL)
			hl = t;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(h, CURLOPT_USERNAME, s->ak);
	curl_easy_setopt(h, CURLOPT_PASSWORD, s->sk);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_SHARE, s->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(s->timeout_ms < 10000 ? s->timeout_ms : 10000));
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, (long)s->verify_tls);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->verify_tls ? 2L : 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->err);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, src);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)(src ? src->len : 0));
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, src);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(src ? src->len : 0));
	} else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
	else if (r->err[0] == '\0')
		snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(rc));
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		char why[512];

		snprintf(why, sizeof(why), "%s %s: %s", method, url, r->err);
		mark_bad(s, why);
		return -1;
	}
	if (r->code >= 500) {
		char why[512], d[300];

		describe(r, d, sizeof(d));
		snprintf(why, sizeof(why), "%s %s: %s", method, url, d);
		mark_bad(s, why);
	}
	return 0;
}

/* Fill err with "what: why" for a failed request. */
static void
fail_msg(const struct resp *r, const char *what, char *err, size_t errlen)
{
	char d[400];

	describe(r, d, sizeof(d));
	snprintf(err, errlen, "%s: %s", what, d);
}

/* ------------------------------------------------------------ uploads */

static int
put_single(struct s3 *s, const char *key, int fd, off_t size,
    const char *ctype, char *err, size_t errlen)
{
	char url[S3_URL_MAX], sha[65], ct[300], body[2048];
	const char *hdr[2] = { ct, NULL };
	struct src src = { fd, 0, size, 0, NULL };
	struct resp r = { .body = body, .cap = sizeof(body) };

	if (sha256_hex_fd(fd, 0, size, sha) == -1) {
		snprintf(err, errlen, "reading the upload: %s",
		    strerror(errno));
		return -1;
	}
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
	if (make_url(s, key, NULL, url, sizeof(url)) == -1) {
		snprintf(err, errlen, "key too long");
		return -1;
	}
	if (request(s, "PUT", url, &src, sha, hdr, &r) == -1 ||
	    r.code / 100 != 2) {
		fail_msg(&r, "PUT", err, errlen);
		return -1;
	}
	return 0;
}

static void
abort_multipart(struct s3 *s, const char *key, const char *upload_id)
{
	char url[S3_URL_MAX], q[1200], enc[1024], body[1024];
	struct resp r = { .body = body, .cap = sizeof(body) };

	if (uri_encode(upload_id, 0, enc, sizeof(enc)) == -1)
		return;
	snprintf(q, sizeof(q), "uploadId=%s", enc);
	if (make_url(s, key, q, url, sizeof(url)) == -1)
		return;
	if (request(s, "DELETE", url, NULL, EMPTY_SHA256, NULL, &r) == -1 ||
	    r.code / 100 != 2) {
		char d[400];

		describe(&r, d, sizeof(d));
		s->host->log(s->ctx, PARLEY_LOG_WARN, "aborting multipart "
		    "upload of %s: %s (the store keeps its parts until a "
		    "lifecycle rule removes them)", key, d);
	}
}

static int
put_multipart(struct s3 *s, const char *key, int fd, off_t size,
    const char *ctype, char *err, size_t errlen)
{
	char url[S3_URL_MAX], q[1200], enc[1024], upload_id[1024];
	char sha[65], ct[300], body[4096];
	const char *hdr[2] = { ct, NULL };
	const char *xhdr[2] = { "Content-Type: application/xml", NULL };
	struct resp r = { .body = body, .cap = sizeof(body) };
	struct src none = { -1, 0, 0, 0, "" };
	char (*etags)[256] = NULL;
	size_t nparts, i, xl, xcap;
	char *xml = NULL;
	int rc = -1;

	nparts = (size_t)((size + s->part_size - 1) / s->part_size);
	if (nparts > S3_PARTS_MAX) {
		snprintf(err, errlen, "%lld bytes need more than %d parts of "
		    "%lld bytes: raise [s3] part_size", (long long)size,
		    S3_PARTS_MAX, s->part_size);
		return -1;
	}
	/* create */
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
	if (make_url(s, key, "uploads=", url, sizeof(url)) == -1) {
		snprintf(err, errlen, "key too long");
		return -1;
	}
	if (request(s, "POST", url, &none, EMPTY_SHA256, hdr, &r) == -1 ||
	    r.code / 100 != 2) {
		fail_msg(&r, "CreateMultipartUpload", err, errlen);
		return -1;
	}
	if (!xml_tag(body, "UploadId", upload_id, sizeof(upload_id)) ||
	    upload_id[0] == '\0' ||
	    uri_encode(upload_id, 0, enc, sizeof(enc)) == -1) {
		snprintf(err, errlen, "CreateMultipartUpload: no UploadId in "
		    "the answer");
		return -1;
	}
	if ((etags = calloc(nparts, sizeof(*etags))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* parts; query parameters in canonical order */
	for (i = 0; i < nparts; i++) {
		off_t off = (off_t)i * s->part_size;
		off_t len = size - off < s->part_size ? size - off :
		    s->part_size;
		struct src src = { fd, off, len, 0, NULL };

		if (sha256_hex_fd(fd, off, len, sha) == -1) {
			snprintf(err, errlen, "reading the upload: %s",
			    strerror(errno));
			goto fail;
		}
		snprintf(q, sizeof(q), "partNumber=%zu&uploadId=%s", i + 1,
		    enc);
		make_url(s, key, q, url, sizeof(url));
		if (request(s, "PUT", url, &src, sha, NULL, &r) == -1 ||
		    r.code / 100 != 2) {
			char what[64];

			snprintf(what, sizeof(what), "UploadPart %zu/%zu",
			    i + 1, nparts);
			fail_msg(&r, what, err, errlen);
			goto fail;
		}
		if (r.etag[0] == '\0') {
			snprintf(err, errlen, "UploadPart %zu: no ETag", i + 1);
			goto fail;
		}
		snprintf(etags[i], sizeof(etags[i]), "%s", r.etag);
	}
	/* complete */
	xcap = 128 + nparts * 340;
	if ((xml = malloc(xcap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	xl = (size_t)snprintf(xml, xcap, "<CompleteMultipartUpload>");
	for (i = 0; i < nparts; i++)
		xl += (size_t)snprintf(xml + xl, xcap - xl, "<Part><PartNumber>"
		    "%zu</PartNumber><ETag>%s</ETag></Part>", i + 1, etags[i]);
	xl += (size_t)snprintf(xml + xl, xcap - xl,
	    "</CompleteMultipartUpload>");
	{
		struct src src = { -1, 0, (off_t)xl, 0, xml };

		sha256_hex_mem(xml, xl, sha);
		snprintf(q, sizeof(q), "uploadId=%s", enc);
		make_url(s, key, q, url, sizeof(url));
		/* a 200 may still carry an <Error> (S3 does that) */
		if (request(s, "POST", url, &src, sha, xhdr, &r) == -1 ||
		    r.code / 100 != 2 || strstr(body, "<Error>") != NULL) {
			fail_msg(&r, "CompleteMultipartUpload", err, errlen);
			goto fail;
		}
	}
	rc = 0;
	goto out;
fail:
	abort_multipart(s, key, upload_id);
out:
	free(etags);
	free(xml);
	return rc;
}

static int
s3_put_file(void *state, const char *id, const char *path,
    const char *content_type, char *err, size_t errlen)
{
	struct s3 *s = state;
	char key[S3_KEY_MAX];
	struct stat st;
	int fd, rc;

	if (object_key(s, id, "", key, sizeof(key)) == -1) {
		snprintf(err, errlen, "invalid media id");
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (content_type == NULL || content_type[0] == '\0')
		content_type = "application/octet-stream";
	if (st.st_size > s->part_size)
		rc = put_multipart(s, key, fd, st.st_size, content_type, err,
		    errlen);
	else
		rc = put_single(s, key, fd, st.st_size, content_type, err,
		    errlen);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------ metadata */

static int
s3_put_meta(void *state, const char *id, const char *meta, char *err,
    size_t errlen)
{
	struct s3 *s = state;
	char key[S3_KEY_MAX], url[S3_URL_MAX], sha[65], body[2048];
	const char *hdr[2] = { "Content-Type: application/json", NULL };
	struct src src = { -1, 0, (off_t)strlen(meta), 0, meta };
	struct resp r = { .body = body, .cap = sizeof(body) };

	if (object_key(s, id, ".meta", key, sizeof(key)) == -1 ||
	    make_url(s, key, NULL, url, sizeof(url)) == -1) {
		snprintf(err, errlen, "invalid media id");
		return -1;
	}
	sha256_hex_mem(meta, strlen(meta), sha);
	if (request(s, "PUT", url, &src, sha, hdr, &r) == -1 ||
	    r.code / 100 != 2) {
		fail_msg(&r, "PUT metadata", err, errlen);
		return -1;
	}
	return 0;
}

static int
s3_get_meta(void *state, const char *id, char *buf, size_t buflen, char *err,
    size_t errlen)
{
	struct s3 *s = state;
	char key[S3_KEY_MAX], url[S3_URL_MAX];
	struct resp r = { .body = buf, .cap = buflen };

	if (!id_valid(id) || buflen < 2)
		return 0;
	if (object_key(s, id, ".meta", key, sizeof(key)) == -1 ||
	    make_url(s, key, NULL, url, sizeof(url)) == -1)
		return 0;
	if (request(s, "GET", url, NULL, EMPTY_SHA256, NULL, &r) == -1) {
		fail_msg(&r, "GET metadata", err, errlen);
		return -1;
	}
	if (r.code == 404)
		return 0;
	if (r.code / 100 != 2) {
		fail_msg(&r, "GET metadata", err, errlen);
		return -1;
	}
	if (r.truncated) {
		snprintf(err, errlen, "metadata of %s larger than %zu bytes",
		    id, buflen - 1);
		return -1;
	}
	return 1;
}

/* ------------------------------------------------------------ presigning */

/*
 * A presigned GET URL for key, valid s->expiry seconds, on the public
 * endpoint (SigV4 query authentication, UNSIGNED-PAYLOAD).
 */
static int
presign(struct s3 *s, const char *key, const char *ctype, const char *disp,
    char *url, size_t urllen, char *err, size_t errlen)
{
	char host[512], uri[S3_URL_MAX], q[S3_URL_MAX], cred[512];
	char amzdate[32], date[16], scope[128], canon[S3_URL_MAX * 3];
	char e1[1024], e2[3 * 2048 + 1], e3[1024], chash[65], sig[65];
	char sts[512];
	unsigned char k1[32], k2[32], k3[32], k4[32], mac[32];
	char secret[300];
	struct tm tm;
	time_t now = time(NULL);
	size_t ql;

	if (target(s, &s->pub, key, host, sizeof(host), uri, sizeof(uri)) ==
	    -1) {
		snprintf(err, errlen, "key too long");
		return -1;
	}
	gmtime_r(&now, &tm);
	strftime(amzdate, sizeof(amzdate), "%Y%m%dT%H%M%SZ", &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", date,
	    s->region);
	snprintf(cred, sizeof(cred), "%s/%s", s->ak, scope);
	uri_encode(cred, 0, e1, sizeof(e1));
	/* sorted by name: X-Amz-* (upper case) before response-* */
	ql = (size_t)snprintf(q, sizeof(q), "X-Amz-Algorithm=AWS4-HMAC-SHA256"
	    "&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-Expires=%lld", e1,
	    amzdate, s->expiry);
	if (s->token[0] != '\0') {
		if (uri_encode(s->token, 0, e2, sizeof(e2)) == -1) {
			snprintf(err, errlen, "session token too long");
			return -1;
		}
		ql += (size_t)snprintf(q + ql, sizeof(q) - ql,
		    "&X-Amz-Security-Token=%s", e2);
	}
	ql += (size_t)snprintf(q + ql, sizeof(q) - ql,
	    "&X-Amz-SignedHeaders=host");
	if (disp != NULL && disp[0] != '\0' &&
	    uri_encode(disp, 0, e3, sizeof(e3)) == 0)
		ql += (size_t)snprintf(q + ql, sizeof(q) - ql,
		    "&response-content-disposition=%s", e3);
	if (ctype != NULL && ctype[0] != '\0' &&
	    uri_encode(ctype, 0, e3, sizeof(e3)) == 0)
		ql += (size_t)snprintf(q + ql, sizeof(q) - ql,
		    "&response-content-type=%s", e3);
	if (ql >= sizeof(q)) {
		snprintf(err, errlen, "presigned URL too long");
		return -1;
	}
	snprintf(canon, sizeof(canon), "GET\n%s\n%s\nhost:%s\n\nhost\n"
	    "UNSIGNED-PAYLOAD", uri, q, host);
	sha256_hex_mem(canon, strlen(canon), chash);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amzdate,
	    scope, chash);
	snprintf(secret, sizeof(secret), "AWS4%s", s->sk);
	if (hmac256(secret, strlen(secret), date, strlen(date), k1) == -1 ||
	    hmac256(k1, 32, s->region, strlen(s->region), k2) == -1 ||
	    hmac256(k2, 32, "s3", 2, k3) == -1 ||
	    hmac256(k3, 32, "aws4_request", 12, k4) == -1 ||
	    hmac256(k4, 32, sts, strlen(sts), mac) == -1) {
		explicit_bzero(secret, sizeof(secret));
		snprintf(err, errlen, "HMAC-SHA256 failed");
		return -1;
	}
	explicit_bzero(secret, sizeof(secret));
	hex(mac, 32, sig);
	if ((size_t)snprintf(url, urllen, "%s://%s%s?%s&X-Amz-Signature=%s",
	    s->pub.scheme, host, uri, q, sig) >= urllen) {
		snprintf(err, errlen, "presigned URL too long");
		return -1;
	}
	return 0;
}

static int
s3_open_as(void *state, const char *id, const char *ctype, const char *disp,
    int *fd, char *url, size_t urllen, char *err, size_t errlen)
{
	struct s3 *s = state;
	char key[S3_KEY_MAX];

	*fd = -1;
	if (object_key(s, id, "", key, sizeof(key)) == -1)
		return 0;
	/* existence is the host's business (get_meta): no round trip */
	return presign(s, key, ctype, disp, url, urllen, err, errlen) == 0 ?
	    1 : -1;
}

static int
s3_open(void *state, const char *id, int *fd, char *url, size_t urllen,
    char *err, size_t errlen)
{
	return s3_open_as(state, id, NULL, NULL, fd, url, urllen, err,
	    errlen);
}

static int
s3_remove(void *state, const char *id, char *err, size_t errlen)
{
	struct s3 *s = state;
	char key[S3_KEY_MAX], url[S3_URL_MAX], body[2048];
	struct resp r = { .body = body, .cap = sizeof(body) };
	int found;

	if (object_key(s, id, "", key, sizeof(key)) == -1)
		return 0;
	/* DELETE answers 204 for missing keys too: ask first */
	make_url(s, key, NULL, url, sizeof(url));
	if (request(s, "HEAD", url, NULL, EMPTY_SHA256, NULL, &r) == -1 ||
	    (r.code / 100 != 2 && r.code != 404)) {
		fail_msg(&r, "HEAD", err, errlen);
		return -1;
	}
	found = r.code / 100 == 2;
	if (request(s, "DELETE", url, NULL, EMPTY_SHA256, NULL, &r) == -1 ||
	    (r.code / 100 != 2 && r.code != 404)) {
		fail_msg(&r, "DELETE", err, errlen);
		return -1;
	}
	object_key(s, id, ".meta", key, sizeof(key));
	make_url(s, key, NULL, url, sizeof(url));
	if (request(s, "DELETE", url, NULL, EMPTY_SHA256, NULL, &r) == -1 ||
	    (r.code / 100 != 2 && r.code != 404)) {
		fail_msg(&r, "DELETE metadata", err, errlen);
		return -1;
	}
	return found;
}

/* ------------------------------------------------------------ health */

/* HEAD the bucket: 1 reachable and ours, 0 refused/missing, -1 down. */
static int
check_bucket(struct s3 *s, struct resp *r, char *why, size_t wl)
{
	char url[S3_URL_MAX];

	make_url(s, "", NULL, url, sizeof(url));
	if (request(s, "HEAD", url, NULL, EMPTY_SHA256, NULL, r) == -1) {
		snprintf(why, wl, "%.300s unreachable: %.150s", url, r->err);
		return -1;
	}
	if (r->code / 100 == 2)
		return 1;
	if (r->code == 403 || r->code == 401 || r->code == 400) {
		/* HEAD has no body: GET says which error it is */
		request(s, "GET", url, NULL, EMPTY_SHA256, NULL, r);
	}
	describe(r, why, wl);
	return r->code >= 500 ? -1 : 0;
}

static void
probe_work(void *arg)
{
	struct s3 *s = arg;
	char body[4096];
	struct resp r = { .body = body, .cap = sizeof(body) };

	s->probe_ok = check_bucket(s, &r, s->probe_why,
	    sizeof(s->probe_why)) == 1;
}

static void
probe_done(void *arg)
{
	struct s3 *s = arg;

	s->probing = 0;
	if (s->probe_ok) {
		atomic_store(&s->bad, 0);
		s->backoff_ms = 1000;
		if (!s->ready) {
			s->ready = 1;
			s->host->set_ready(s->ctx, 1, NULL);	/* logs */
		}
		return;
	}
	if (s->ready) {
		s->ready = 0;
		s->host->set_ready(s->ctx, 0, s->probe_why);	/* logs */
	}
	s->next_probe = s->host->now_ms() + s->backoff_ms;
	if (s->backoff_ms < 30000)
		s->backoff_ms *= 2;
}

static void
tick(void *arg)
{
	struct s3 *s = arg;

	if (s->probing || (!atomic_load(&s->bad) && s->ready) ||
	    s->host->now_ms() < s->next_probe)
		return;
	s->probing = 1;
	if (s->host->submit(s->ctx, probe_work, probe_done, s) == -1)
		s->probing = 0;
}

/* ------------------------------------------------------------ life */

static int
create_bucket(struct s3 *s, char *why, size_t wl)
{
	char url[S3_URL_MAX], xml[256], sha[65], body[4096];
	const char *hdr[2] = { "Content-Type: application/xml", NULL };
	struct resp r = { .body = body, .cap = sizeof(body) };
	struct src src = { -1, 0, 0, 0, "" };

	make_url(s, "", NULL, url, sizeof(url));
	if (strcmp(s->region, "us-east-1") != 0) {
		snprintf(xml, sizeof(xml), "<CreateBucketConfiguration><Location"
		    "Constraint>%s</LocationConstraint></CreateBucketConfiguration>",
		    s->region);
		src.mem = xml;
		src.len = (off_t)strlen(xml);
	}
	sha256_hex_mem(src.mem, (size_t)src.len, sha);
	if (request(s, "PUT", url, &src, sha, hdr, &r) == -1 ||
	    r.code / 100 != 2) {
		describe(&r, why, wl);
		return -1;
	}
	return 0;
}

static int
cfg_str(struct s3 *s, const char *key, const char *env, const char *def,
    char *out, size_t len)
{
	const char *v = s->host->config_get(s->ctx, key, NULL);

	if ((v == NULL || v[0] == '\0') && env != NULL)
		v = getenv(env);
	if (v == NULL)
		v = def;
	if (strlen(v) >= len) {
		s->host->log(s->ctx, PARLEY_LOG_ERROR, "%s: longer than "
		    "%zu characters", key, len - 1);
		return -1;
	}
	snprintf(out, len, "%s", v);
	return 0;
}

static void
s3_fini(void *state)
{
	struct s3 *s = state;
	int i;

	if (s->tick != NULL)
		s->host->timer_del(s->tick);
	if (s->share != NULL)
		curl_share_cleanup(s->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->locks[i]);
	pthread_mutex_destroy(&s->why_lock);
	explicit_bzero(s->sk, sizeof(s->sk));
	explicit_bzero(s->token, sizeof(s->token));
	free(s);
	curl_global_cleanup();
}

/*
 * Read [s3] into s (s->host and s->ctx set) and check it; ep gets the
 * endpoint URL as configured.  Shared by init and check, so that -t reads
 * every key init reads.  Touches no network.  0 or -1 after logging.
 */
static int
s3_config(struct s3 *s, char *ep, size_t eplen)
{
	const struct parley_host *host = s->host;
	struct parley_ctx *ctx = s->ctx;
	char pub[512], ps[32];
	long long v;
	int i, b;
	size_t n;

	if (cfg_str(s, "endpoint", NULL, "", ep, eplen) == -1 ||
	    cfg_str(s, "public_endpoint", NULL, "", pub, sizeof(pub)) == -1 ||
	    cfg_str(s, "region", NULL, "us-east-1", s->region,
	    sizeof(s->region)) == -1 ||
	    cfg_str(s, "bucket", NULL, "", s->bucket, sizeof(s->bucket)) ==
	    -1 ||
	    cfg_str(s, "access_key", "AWS_ACCESS_KEY_ID", "", s->ak,
	    sizeof(s->ak)) == -1 ||
	    cfg_str(s, "secret_key", "AWS_SECRET_ACCESS_KEY", "", s->sk,
	    sizeof(s->sk)) == -1 ||
	    cfg_str(s, "session_token", "AWS_SESSION_TOKEN", "", s->token,
	    sizeof(s->token)) == -1 ||
	    cfg_str(s, "prefix", NULL, "media/", s->prefix,
	    sizeof(s->prefix)) == -1 ||
	    cfg_str(s, "part_size", NULL, "8m", ps, sizeof(ps)) == -1)
		return -1;
	if (ep[0] == '\0' || parse_endpoint(ep, &s->ep) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "endpoint = '%s': "
		    "expected http://HOST[:PORT] or https://HOST[:PORT]", ep);
		return -1;
	}
	if (pub[0] == '\0')
		s->pub = s->ep;
	else if (parse_endpoint(pub, &s->pub) == -1) {
		host->log(ctx, PARLEY_LOG_ERROR, "public_endpoint = "
		    "'%s': expected http://HOST[:PORT] or https://HOST[:PORT]",
		    pub);
		return -1;
	}
	n = strlen(s->bucket);
	for (i = 0; i < (int)n; i++)
		if (!((s->bucket[i] >= 'a' && s->bucket[i] <= 'z') ||
		    (s->bucket[i] >= '0' && s->bucket[i] <= '9') ||
		    s->bucket[i] == '-' || s->bucket[i] == '.'))
			break;
	if (n < 3 || n > 63 || i != (int)n) {
		host->log(ctx, PARLEY_LOG_ERROR, "bucket = '%s': expected "
		    "3 to 63 of a-z 0-9 . -", s->bucket);
		return -1;
	}
	for (i = 0; s->region[i] != '\0'; i++)
		if (!((s->region[i] >= 'a' && s->region[i] <= 'z') ||
		    (s->region[i] >= '0' && s->region[i] <= '9') ||
		    s->region[i] == '-'))
			break;
	if (s->region[0] == '\0' || s->region[i] != '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "region = '%s': expected "
		    "a region name such as eu-west-1", s->region);
		return -1;
	}
	if (s->ak[0] == '\0' || s->sk[0] == '\0') {
		host->log(ctx, PARLEY_LOG_ERROR, "access_key and "
		    "secret_key are required (or set AWS_ACCESS_KEY_ID and "
		    "AWS_SECRET_ACCESS_KEY)");
		return -1;
	}
	if (strchr(s->ak, ':') != NULL || strchr(s->ak, '/') != NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "access_key: ':' and "
		    "'/' are not allowed in an access key id");
		return -1;
	}
	if ((v = parse_size(ps)) < 5LL << 20 || v > 5LL << 30) {
		host->log(ctx, PARLEY_LOG_ERROR, "part_size = '%s': "
		    "expected a size from 5m to 5g (S3 parts are at least "
		    "5 MiB)", ps);
		return -1;
	}
	s->part_size = v;
	if (host->config_int(ctx, "presign_expiry", 300, 1, 604800,
	    &s->expiry) == -1 ||
	    host->config_int(ctx, "timeout_ms", 60000, 1000, 3600000,
	    &s->timeout_ms) == -1 ||
	    host->config_bool(ctx, "path_style", 0, &s->path_style) == -1 ||
	    host->config_bool(ctx, "create_bucket", 0, &b) == -1 ||
	    host->config_bool(ctx, "verify_tls", 1, &s->verify_tls) == -1)
		return -1;
	s->create_bucket = b;
	if (!s->path_style && strchr(s->bucket, '.') != NULL &&
	    strcmp(s->ep.scheme, "https") == 0)
		host->log(ctx, PARLEY_LOG_WARN, "bucket '%s' has dots: "
		    "virtual-hosted TLS names will not match the certificate; "
		    "set path_style = true", s->bucket);
	return 0;
}

static int
s3_init(const struct parley_host *host, struct parley_ctx *ctx, void **state)
{
	struct s3 *s;
	char ep[512], why[512], body[4096];
	struct resp r = { .body = body, .cap = sizeof(body) };
	int i;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		host->log(ctx, PARLEY_LOG_ERROR, "curl_global_init failed");
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		curl_global_cleanup();
		return -1;
	}
	s->host = host;
	s->ctx = ctx;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->locks[i], NULL);
	pthread_mutex_init(&s->why_lock, NULL);
	s->ready = 1;
	s->backoff_ms = 1000;
	if (s3_config(s, ep, sizeof(ep)) == -1)
		goto fail;
	snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", s->region);
	if ((s->share = curl_share_init()) == NULL)
		goto fail;
	curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(s->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);

	switch (check_bucket(s, &r, why, sizeof(why))) {
	case 1:
		break;
	case 0:
		if (r.code == 404 && s->create_bucket) {
			if (create_bucket(s, why, sizeof(why)) == -1) {
				host->log(ctx, PARLEY_LOG_ERROR, "cannot "
				    "create bucket '%s' at %s: %s", s->bucket,
				    ep, why);
				goto fail;
			}
			host->log(ctx, PARLEY_LOG_INFO, "created bucket %s",
			    s->bucket);
			break;
		}
		if (r.code == 404)
			host->log(ctx, PARLEY_LOG_ERROR, "bucket '%s' does "
			    "not exist at %s (%s): create it, or set "
			    "create_bucket = true", s->bucket, ep, why);
		else if (r.code == 403 || r.code == 401)
			host->log(ctx, PARLEY_LOG_ERROR, "%s refused the "
			    "credentials for bucket '%s' (%s): check [s3] "
			    "access_key and secret_key (or "
			    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), region "
			    "= %s and the bucket's permissions", ep,
			    s->bucket, why, s->region);
		else
			host->log(ctx, PARLEY_LOG_ERROR, "bucket '%s' at "
			    "%s: %s", s->bucket, ep, why);
		goto fail;
	default:
		/* down: start anyway, not ready, probe until it answers */
		s->ready = 0;
		atomic_store(&s->bad, 1);
		host->set_ready(ctx, 0, why);	/* logs */
		break;
	}
	s->tick = host->timer_add(ctx, 500, 1, tick, s);
	host->log(ctx, PARLEY_LOG_INFO, "media in bucket %s at %s (%s, "
	    "region %s, prefix '%s', multipart above %lld bytes)", s->bucket,
	    ep, s->path_style ? "path-style" : "virtual-hosted", s->region,
	    s->prefix, s->part_size);
	*state = s;
	return 0;
fail:
	s3_fini(s);
	return -1;
}

/*
 * parleyd -t: read and check [s3] as init does, but reach no endpoint:
 * neither the bucket check nor create_bucket happen here.
 */
static int
s3_check(const struct parley_host *host, struct parley_ctx *ctx)
{
	struct s3 *s;
	char ep[512];
	int rv;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		host->log(ctx, PARLEY_LOG_ERROR, "out of memory");
		return -1;
	}
	s->host = host;
	s->ctx = ctx;
	rv = s3_config(s, ep, sizeof(ep));
	explicit_bzero(s->sk, sizeof(s->sk));
	explicit_bzero(s->token, sizeof(s->token));
	free(s);
	return rv;
}

static const struct parley_media_ops s3_ops = {
	.size = sizeof(struct parley_media_ops),
	.put_file = s3_put_file,
	.open = s3_open,
	.remove = s3_remove,
	.put_meta = s3_put_meta,
	.get_meta = s3_get_meta,
	.open_as = s3_open_as,
};

static const struct parley_plugin s3_plugin = {
	.abi_version = PARLEY_ABI_VERSION,
	.kind = PARLEY_PLUGIN_MEDIA,
	.name = "s3",
	.version = "1.0",
	.description = "media files in an S3-compatible object store",
	.init = s3_init,
	.fini = s3_fini,
	.media = &s3_ops,
	.check = s3_check,
};

PARLEY_PLUGIN_EXPORT const struct parley_plugin *
parley_plugin_entry(void)
{
	return &s3_plugin;
}
