"""A minimal consumer of SMAP events in Python (pika), the one
docs/event-migration-guide.md walks through: bind a queue of your own to
`smap.events`, parse the envelope, skip duplicates by `event_id`, pick up the
trace context, ack.

Run: AMQP_URL=amqp://guest:guest@localhost:5672/%2f QUEUE=my_service.jobs \
     PATTERN='job.#' python3 examples/consumer.py
(EXIT_AFTER=N stops after N deliveries; the tests use it.)
"""
import json
import os
import sys

import pika

url = os.environ["AMQP_URL"]
queue = os.environ["QUEUE"]
pattern = os.environ.get("PATTERN", "#")
exit_after = int(os.environ.get("EXIT_AFTER", "0")) or None

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
# The same declaration as the publisher's: a durable topic exchange.
channel.exchange_declare("smap.events", exchange_type="topic", durable=True)
# Your own durable queue, bound by routing-key pattern.
channel.queue_declare(queue, durable=True)
channel.queue_bind(queue, "smap.events", routing_key=pattern)
channel.basic_qos(prefetch_count=16)
print(f"ready {queue} {pattern}", flush=True)

# In production keep the seen ids where every instance sees them, e.g.
# Redis SET smap:<your-service>:seen:<event_id> 1 NX EX 604800.
seen = set()
handled = 0
for method, properties, body in channel.consume(queue):
    envelope = json.loads(body)
    event_id = envelope["event_id"]
    routing_key = envelope["payload"]["routing_key"]
    # W3C trace context: continue the producer's trace from here (with
    # opentelemetry: TraceContextTextMapPropagator().extract(headers)).
    traceparent = (properties.headers or {}).get("traceparent", "")
    if event_id not in seen:
        seen.add(event_id)
        data = json.dumps(envelope["payload"]["data"], separators=(",", ":"))
        print(f"handled {event_id} {routing_key} traceparent={traceparent} data={data}", flush=True)
    else:
        print(f"duplicate {event_id}", flush=True)
    channel.basic_ack(method.delivery_tag)
    handled += 1
    if exit_after and handled >= exit_after:
        break

channel.cancel()
connection.close()
sys.exit(0)
