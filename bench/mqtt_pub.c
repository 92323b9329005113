/* Paced QoS 1 MQTT publisher for bench/connectors.py (one tag per message), in C with
 * libmosquitto so that the load generator costs little of the 2 cores the connector runs on.
 *
 *   mqtt_pub HOST PORT PREFIX N_TAGS N_MESSAGES RATE START_EPOCH_S OUT_JSON
 *
 * Message i goes to PREFIX/S<i % N_TAGS, 3 digits> with {"ts": START + (i / N_TAGS) ms, "value": i % 1000}
 * (the same keys as message_keys() in connectors.py), at RATE messages/s from the first one.
 * The wall-clock time of each publish call is written to OUT_JSON as a JSON array of seconds.
 * Built by the bench when gcc and libmosquitto-dev are there:
 *   gcc -O2 -o mqtt_pub bench/mqtt_pub.c -lmosquitto
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile long acknowledged = 0;

static void on_publish(struct mosquitto *mosq, void *userdata, int mid) {
    (void)mosq; (void)userdata; (void)mid;
    __atomic_add_fetch(&acknowledged, 1, __ATOMIC_RELAXED);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT PREFIX N_TAGS N_MESSAGES RATE START_EPOCH_S OUT_JSON\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *prefix = argv[3], *out = argv[8];
    int port = atoi(argv[2]);
    long n_tags = atol(argv[4]), n_messages = atol(argv[5]);
    double rate = atof(argv[6]);
    long long start_s = atoll(argv[7]);
    double *times = malloc(sizeof(double) * (size_t)n_messages);
    if (!times) return 1;

    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new(NULL, true, NULL);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_max_inflight_messages_set(mosq, 1000);
    if (mosquitto_connect(mosq, host, port, 30) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "cannot connect to %s:%d\n", host, port);
        return 1;
    }
    mosquitto_loop_start(mosq);
    usleep(200000);

    char topic[256], payload[128], stamp[64];
    double began = mono_s();
    for (long i = 0; i < n_messages; i++) {
        if (rate > 0) {
            double delay = began + (double)i / rate - mono_s();
            if (delay > 0) usleep((useconds_t)(delay * 1e6));
        }
        long ms = i / n_tags;
        time_t secs = (time_t)(start_s + ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(topic, sizeof topic, "%s/S%03ld", prefix, i % n_tags);
        int len = snprintf(payload, sizeof payload, "{\"ts\": \"%s.%06ld+00:00\", \"value\": %ld.0}", stamp, (ms % 1000) * 1000, i % 1000);
        times[i] = now_s();
        int rc;
        while ((rc = mosquitto_publish(mosq, NULL, topic, len, payload, 1, false)) == MOSQ_ERR_NOMEM) usleep(1000);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "publish %ld failed: %s\n", i, mosquitto_strerror(rc));
            return 1;
        }
    }
    while (__atomic_load_n(&acknowledged, __ATOMIC_RELAXED) < n_messages) usleep(10000);
    mosquitto_disconnect(mosq);
    mosquitto_loop_stop(mosq, false);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();

    FILE *f = fopen(out, "w");
    if (!f) return 1;
    fputc('[', f);
    for (long i = 0; i < n_messages; i++) fprintf(f, i ? ",%.6f" : "%.6f", times[i]);
    fputs("]\n", f);
    fclose(f);
    return 0;
}
