/*
 * main.c - parley-bench: the load generator (gen.c) and the reflector
 * (reflect.c) in one binary.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* print a free TCP port on 127.0.0.1 (for scripts; racy like all such) */
static int
port_cmd(void)
{
	struct sockaddr_in sin;
	socklen_t l = sizeof(sin);
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &l) == -1) {
		perror("parley-bench port");
		return 1;
	}
	printf("%d\n", ntohs(sin.sin_port));
	close(fd);
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
