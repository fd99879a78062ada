//! The text `--help` prints.

/// The help text printed by `--help`.
pub const HELP: &str = "\
ferrows-load: a WebSocket load generator (RFC 6455, ws:// and wss://)

USAGE:
    ferrows-load <MODE> [OPTIONS]

MODES:
    echo       N connections each keep K messages in flight: frames encoded
               once and copied out, echoes counted from their frame headers,
               round trips sampled (the first message of each write)
    idle       open N connections and hold them; with --server-pid, report the
               server's resident memory per connection (Linux)
    connect    handshakes per second: open, handshake, Close, wait for the
               server to close, again, with C at a time
    fanout     N subscribers of one topic and one publisher, with the JSON
               pub/sub protocol of ferrows' /pubsub: deliveries per second,
               publish-to-receipt delay, order and gaps per subscriber
    room       N members of one room (a path such as ferrows' /rooms/NAME, where
               each text message goes to every member, the sender included):
               every member sends one message per round, and a round ends when
               every member has all N; rounds and deliveries per second

COMMON OPTIONS:
    --url URL              server to load (default ws://127.0.0.1:9001/); wss:// speaks TLS
    --ca FILE              wss://: verify the server against these PEM CA certificates
                           (default: take any certificate, as a load generator only measures)
    --threads T            event loops, connections split across them (default 1)
    --sources A,B,...      source addresses to bind before connecting, round-robin
    --source-range A-B     IPv4 source addresses from A to B (e.g. 127.0.0.1-127.0.0.20),
                           to open more connections to one server port than one
                           address has ephemeral ports for
    --max-pending N        most connections in TCP connect or handshake at once,
                           all threads together (default 1000), so that the
                           server's accept backlog is not overrun (not connect)
    --timeout SECS         give up on a connect plus handshake after SECS (default 10;
                           with --send-once, the first echo too; fanout: the
                           subscribe acknowledgement too; room: a round that
                           makes no progress this long is reported and ends the run)
    --protocol NAME        offer a subprotocol (repeatable)
    --header 'NAME: VALUE' add a request header, e.g. Origin (repeatable)
    --deflate              offer permessage-deflate (RFC 7692) as browsers do
                           (`permessage-deflate; client_max_window_bits`): the
                           server chooses the windows and context takeover; the
                           summary says on how many connections it accepted
    --deflate-no-context-takeover
                           with --deflate: ask both ends to reset their compressor
                           after every message (less memory, less compression)
    --check                check the flags, print what would run, and exit
    -h, --help             print this help

ECHO OPTIONS:
    --connections N        connections (default 100)
    --in-flight K          messages in flight per connection (default 1)
    --size BYTES           payload size (default 16; at least 8 binary, 16 text)
    --binary | --text      message type (default binary)
    --payload KIND         what fills a message after its send time: pattern
                           (default; bytes 0..250 or digits 0..9 over and over) or
                           json (JSON-like records with varying numbers, which
                           compress the way API and chat traffic does)
    --rate R               each connection sends R messages per second (K in flight
                           at most) instead of one per echo, on the checking path
                           below: a steady load rather than a peak (a soak run)
    --every-message        build, mask, parse and check every message with the
                           library's client, its send time in its payload, for
                           a latency per message (the default path parses only
                           frame headers; connections with permessage-deflate
                           or over wss:// always go this way)
    --warmup SECS          run unmeasured this long once connected (default 1)
    --duration SECS        then measure this long (default 10)

IDLE OPTIONS:
    --connections N        connections (default 100)
    --hold SECS            keep them open this long once all are open (default 10;
                           at least 2 with --server-pid)
    --server-pid PID       read the server's VmRSS from /proc/PID/status before
                           opening (after 1 s) and once all are open (after 2 s);
                           measure on a freshly started server
    --send-once            once a connection opens, send it one JSON-like text
                           message and count it open only when the echo is back
                           (the server must echo); with --deflate the server has
                           then built its compression state before its memory is
                           read
    --size BYTES           with --send-once: the message size (default 1024)

CONNECT OPTIONS:
    --concurrency C        connections in progress at once (default 50)
    --warmup SECS          run unmeasured this long first (default 1)
    --duration SECS        then measure this long (default 10)

FANOUT OPTIONS (--url ws://HOST:PORT/pubsub):
    --subscribers N        subscriber connections (default 1000), plus one publisher
    --publisher-url URL    the publisher connects here instead of --url: another node
                           of a cluster, for cross-node fan-out. Its node acknowledges
                           before the other delivers, so then a publish is in flight
                           until every subscriber has it (one thread holds them all)
    --size BYTES           size of each publish's `data` (default 64, at least 48):
                           {\"t\":SEND_NS,\"s\":SEQUENCE,\"p\":\"xx..\"}
    --in-flight K          publishes sent and not yet acknowledged (default 1);
                           the publisher sends the next one on each ack
    --rate R               publish R times per second (K unacknowledged at most)
                           instead of on each ack
    --warmup SECS          publish unmeasured this long once all subscribed (default 1)
    --duration SECS        then measure this long (default 10)
    Every subscriber subscribes to the topic `ferrows-load` and counts open once
    acknowledged; publishing starts when all are. A subscriber's sequence numbers
    must rise: a gap counts its missing messages as dropped (a server may drop
    for slow subscribers), a repeat or a step back is an error.

ROOM OPTIONS (--url ws://HOST:PORT/rooms/NAME):
    --members N            members (default 100)
    --size BYTES           message size (default 32, at least 16): MEMBER:ROUND:xx..
    --rounds R             measure R rounds, then stop
    --rate R               start R rounds per second at most, instead of each one
                           as soon as the one before ends (a round's time counts
                           from its start)
    --duration SECS        or measure this long (default 10)
    --warmup SECS          run rounds unmeasured this long first (default 1)
    A message of another round, a second one from the same member in a round,
    or one missing (the round stalls for --timeout) is an error.

SECS may be fractional (0.5). Progress goes to stderr every second; the summary
goes to stdout and ends with one line for scripts:
    RESULT mode=echo connections=.. size=.. msgs_per_sec=.. bytes_per_sec=.. p50_us=.. ...
    RESULT mode=fanout subscribers=.. publishes_per_sec=.. deliveries_per_sec=.. p50_us=.. ...
    RESULT mode=room members=.. rounds=.. rounds_per_sec=.. deliveries_per_sec=.. ...
msgs_per_sec and bytes_per_sec count echoes received (payload bytes, one way);
deliveries count messages received by all subscribers or members together (room:
members squared per round); latencies are in microseconds (fanout: from publish
to receipt; room: p50_round_us and p99_round_us, from a round's start to its
last delivery); bytes_per_conn is the server's RSS growth per open connection;
deflate is how many connections use permessage-deflate (0 without --deflate).
The Close that ends each connection must be answered within 2 s.

EXIT STATUS:
    0 the run completed without errors
    1 nothing could connect, or errors occurred (they are listed)
    2 the command line is wrong

EXAMPLES:
    ferrows-load echo --url ws://127.0.0.1:9001/ --connections 100 --in-flight 4 --size 64
    ferrows-load echo --text --payload json --size 1024 --deflate
    ferrows-load idle --connections 2000 --send-once --deflate --server-pid 4242
    ferrows-load idle --connections 50000 --source-range 127.0.0.1-127.0.0.4 --server-pid 4242
    ferrows-load connect --concurrency 50 --duration 5
    ferrows-load fanout --url ws://127.0.0.1:9001/pubsub --subscribers 10000 --in-flight 4
    ferrows-load room --url ws://127.0.0.1:9001/rooms/bench --members 100 --rounds 1000
";
