/*
 * kafka-mock.c - run librdkafka's Kafka-protocol mock cluster as a
 * stand-alone broker for tests and demos.
 *
 *	kafka-mock [-b brokers] [-t topic[:partitions]]... [-p partitions]
 *
 * Starts a mock cluster of `brokers` brokers (default 3) listening on
 * random 127.0.0.1 ports, creates each -t topic (default "parley") with
 * its partition count (default -p, itself default 12) and a replication
 * factor of min(3, brokers), prints the bootstrap servers as the first line
 * of stdout, then runs until SIGTERM or SIGINT.
 *
 * Fault injection for tests: commands, one per line on stdin,
 *	down <broker-id>	rd_kafka_mock_broker_set_down
 *	up <broker-id>		rd_kafka_mock_broker_set_up
 *	rtt <broker-id> <ms>	rd_kafka_mock_broker_set_rtt
 *	produce <topic> <key> <id> <sender> <body>
 *				produce one record the way Parley's kafka
 *				backplane does (key = room, headers id, sender,
 *				ts, event = 0, value = body: the rest of the
 *				line), partitioned by key like the plugin;
 *				answered "ok <partition> <offset>"
 * each answered by one line "ok..." or "error: ..." on stdout.  End of stdin
 * is not a reason to exit (run it with stdin from /dev/null as a daemon).
 *
 * The mock keeps everything in memory and does not drop retried duplicates
 * from idempotent producers; it is not a production broker.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 32

static int sigpipe[2] = { -1, -1 };
static rd_kafka_t *producer;	/* for "produce", made on first use */
static int32_t dr_partition;
static int64_t dr_offset;
static rd_kafka_resp_err_t dr_err;

static void
on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	(void)write(sigpipe[1], &c, 1);
	errno = saved;
}

static void
usage(void)
{
	fprintf(stderr, "usage: kafka-mock [-b brokers] "
	    "[-t topic[:partitions]]... [-p partitions]\n");
	exit(2);
}

static long
number(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "kafka-mock: %s must be a number in "
		    "[%ld, %ld], not \"%s\"\n", what, min, max, s);
		exit(2);
	}
	return v;
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	dr_err = m->err;
	dr_partition = m->partition;
	dr_offset = m->offset;
}

/* "produce <topic> <key> <id> <sender> <body>": one record, synchronously. */
static void
produce(rd_kafka_mock_cluster_t *mc, char *args)
{
	char *topic, *key, *id, *sender, *body, *save, errstr[512], ts[32];
	rd_kafka_conf_t *conf;
	rd_kafka_resp_err_t err;
	struct timespec now;

	topic = strtok_r(args, " ", &save);
	key = strtok_r(NULL, " ", &save);
	id = strtok_r(NULL, " ", &save);
	sender = strtok_r(NULL, " ", &save);
	body = save != NULL ? save : "";
	if (topic == NULL || key == NULL || id == NULL || sender == NULL) {
		printf("error: usage: produce <topic> <key> <id> <sender> "
		    "<body>\n");
		return;
	}
	if (producer == NULL) {
		conf = rd_kafka_conf_new();
		if (rd_kafka_conf_set(conf, "bootstrap.servers",
		    rd_kafka_mock_cluster_bootstraps(mc), errstr,
		    sizeof(errstr)) != RD_KAFKA_CONF_OK) {
			printf("error: %s\n", errstr);
			rd_kafka_conf_destroy(conf);
			return;
		}
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
		if ((producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
		    sizeof(errstr))) == NULL) {
			printf("error: %s\n", errstr);
			return;
		}
	}
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(ts, sizeof(ts), "%lld", (long long)now.tv_sec * 1000 +
	    now.tv_nsec / 1000000);
	dr_err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
	err = rd_kafka_producev(producer,
	    RD_KAFKA_V_TOPIC(topic),
	    RD_KAFKA_V_KEY(key, strlen(key)),
	    RD_KAFKA_V_VALUE(body, strlen(body)),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_HEADER("id", id, -1),
	    RD_KAFKA_V_HEADER("sender", sender, -1),
	    RD_KAFKA_V_HEADER("ts", ts, -1),
	    RD_KAFKA_V_HEADER("event", "0", -1),
	    RD_KAFKA_V_END);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		printf("error: %s\n", rd_kafka_err2str(err));
		return;
	}
	rd_kafka_flush(producer, 10000);
	if (dr_err != RD_KAFKA_RESP_ERR_NO_ERROR)
		printf("error: %s\n", rd_kafka_err2str(dr_err));
	else
		printf("ok %d %lld\n", (int)dr_partition,
		    (long long)dr_offset);
}

/* Run one stdin command line; answers on stdout. */
static void
command(rd_kafka_mock_cluster_t *mc, char *line)
{
	char *verb, *a, *b, *save;
	rd_kafka_resp_err_t err;
	long id, ms;

	line[strcspn(line, "\r")] = '\0';
	if (strncmp(line, "produce ", 8) == 0) {
		produce(mc, line + 8);
		fflush(stdout);
		return;
	}
	verb = strtok_r(line, " \t\r\n", &save);
	a = strtok_r(NULL, " \t\r\n", &save);
	b = strtok_r(NULL, " \t\r\n", &save);
	if (verb == NULL)
		return;
	if (a == NULL || (id = strtol(a, NULL, 10)) <= 0) {
		printf("error: usage: down|up <broker-id>, rtt <broker-id> "
		    "<ms>\n");
		fflush(stdout);
		return;
	}
	if (strcmp(verb, "down") == 0)
		err = rd_kafka_mock_broker_set_down(mc, (int32_t)id);
	else if (strcmp(verb, "up") == 0)
		err = rd_kafka_mock_broker_set_up(mc, (int32_t)id);
	else if (strcmp(verb, "rtt") == 0 && b != NULL &&
	    (ms = strtol(b, NULL, 10)) >= 0)
		err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)ms);
	else {
		printf("error: unknown command \"%s\"\n", verb);
		fflush(stdout);
		return;
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		printf("error: %s\n", rd_kafka_err2str(err));
	else
		printf("ok\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	const char *topics[MAX_TOPICS];
	int tparts[MAX_TOPICS];
	int ntopics = 0, nbrokers = 3, defparts = 12, ch, i, stdin_open = 1;
	char errstr[512], buf[1024], *colon;
	size_t blen = 0;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_resp_err_t err;
	struct sigaction sa;
	struct pollfd pfd[2];

	while ((ch = getopt(argc, argv, "b:t:p:h")) != -1) {
		switch (ch) {
		case 'b':
			nbrokers = (int)number(optarg, 1, 16, "-b brokers");
			break;
		case 'p':
			defparts = (int)number(optarg, 1, 10000,
			    "-p partitions");
			break;
		case 't':
			if (ntopics == MAX_TOPICS) {
				fprintf(stderr, "kafka-mock: at most %d "
				    "topics\n", MAX_TOPICS);
				return 2;
			}
			tparts[ntopics] = 0;
			if ((colon = strchr(optarg, ':')) != NULL) {
				*colon = '\0';
				tparts[ntopics] = (int)number(colon + 1, 1,
				    10000, "topic partitions");
			}
			if (*optarg == '\0')
				usage();
			topics[ntopics++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (ntopics == 0) {
		topics[0] = "parley";
		tparts[0] = 0;
		ntopics = 1;
	}

	if (pipe(sigpipe) == -1) {
		perror("kafka-mock: pipe");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The mock cluster lives inside a client handle's threads. */
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr,
	    sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka-mock: %s\n", errstr);
		return 1;
	}
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
	    sizeof(errstr))) == NULL) {
		fprintf(stderr, "kafka-mock: rd_kafka_new: %s\n", errstr);
		return 1;
	}
	if ((mc = rd_kafka_mock_cluster_new(rk, nbrokers)) == NULL) {
		fprintf(stderr, "kafka-mock: cannot create the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	for (i = 0; i < ntopics; i++) {
		err = rd_kafka_mock_topic_create(mc, topics[i],
		    tparts[i] ? tparts[i] : defparts,
		    nbrokers < 3 ? nbrokers : 3);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "kafka-mock: creating topic %s: %s\n",
			    topics[i], rd_kafka_err2str(err));
			rd_kafka_mock_cluster_destroy(mc);
			rd_kafka_destroy(rk);
			return 1;
		}
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	for (i = 0; i < ntopics; i++)
		fprintf(stderr, "kafka-mock: %d brokers, topic %s with %d "
		    "partitions\n", nbrokers, topics[i],
		    tparts[i] ? tparts[i] : defparts);

	for (;;) {
		pfd[0].fd = sigpipe[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = stdin_open ? STDIN_FILENO : -1;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			perror("kafka-mock: poll");
			break;
		}
		if (pfd[0].revents != 0)
			break;
		if (pfd[1].revents != 0) {
			ssize_t n = read(STDIN_FILENO, buf + blen,
			    sizeof(buf) - 1 - blen);
			char *nl;

			if (n <= 0) {
				stdin_open = 0;
				continue;
			}
			blen += (size_t)n;
			buf[blen] = '\0';
			while ((nl = strchr(buf, '\n')) != NULL) {
				*nl = '\0';
				command(mc, buf);
				blen -= (size_t)(nl + 1 - buf);
				memmove(buf, nl + 1, blen + 1);
			}
			if (blen == sizeof(buf) - 1)
				blen = 0;	/* an overlong line: drop it */
		}
	}
	fprintf(stderr, "kafka-mock: shutting down\n");
	if (producer != NULL)
		rd_kafka_destroy(producer);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
