/*
 * main.c - parley-bench: the load generator (gen.c) and the reflector
 * (reflect.c) in one binary.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"

static int
reflect_cmd(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "stomp-listen", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "drop-every", required_argument, NULL, 'D' },
		{ "dup-every", required_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 }
	};
	const char *ws = NULL, *stomp = NULL;
	int ch, quiet = 0;
	unsigned drop = 0, dup = 0;

	while ((ch = getopt_long(argc, argv, "l:s:q", lo, NULL)) != -1) {
		switch (ch) {
		case 'l': ws = optarg; break;
		case 's': stomp = optarg; break;
		case 'q': quiet = 1; break;
		case 'D': drop = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'U': dup = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: parley-bench reflect [--listen "
			    "HOST:PORT] [--stomp-listen HOST:PORT] [-q]\n"
			    "    [--drop-every N] [--dup-every N]   (fault "
			    "injection for tests)\n");
			return 2;
		}
	}
	if (ws == NULL && stomp == NULL)
		ws = "127.0.0.1:8090";
	return reflect_main(ws, stomp, quiet, drop, dup);
}

/* can a listener bind 127.0.0.1:port now?  (0: let the kernel choose) */
static int
try_port(unsigned port)
{
	struct sockaddr_in sin;
	socklen_t l = sizeof(sin);
	int fd, one = 1, got = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &l) == 0)
		got = ntohs(sin.sin_port);
	close(fd);
	return got;
}

/*
 * Print a free TCP port on 127.0.0.1 for scripts.  Racy like all such, so it
 * picks one below the kernel's ephemeral range, where no outgoing connection
 * (the generator opens thousands) can take it before the server binds it.
 */
static int
port_cmd(void)
{
	unsigned lo = 32768, hi = 60999;
	FILE *f;
	int i, p;

	if ((f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) != NULL) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	for (i = 0; lo >= 11000 && lo <= 65535 && i < 200; i++) {
		p = try_port(10000 + (unsigned)random() % (lo - 10000));
		if (p > 0) {
			printf("%d\n", p);
			return 0;
		}
	}
	if ((p = try_port(0)) <= 0) {
		perror("parley-bench port");
		return 1;
	}
	printf("%d\n", p);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "port") == 0)
		return port_cmd();
	if (argc >= 2 && strcmp(argv[1], "reflect") == 0)
		return reflect_cmd(argc - 1, argv + 1);
	return gen_main(argc, argv);
}
