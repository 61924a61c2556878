#!/usr/bin/env bash
# The main job: a real multi-host deployment on the local lab (root, Linux).
#   1. the lab: hosts made of namespaces, each with sshd and podman (KEYBUZZ_LAB_ENGINE=docker: its own
#      dockerd, as the servers run), plus its site folder
#   2. keybuzz install: every landed module, in the seed's order, each validated before the next (monitoring last)
#   3. keybuzz validate: the same checks again, as an operator would run them
# Re-running it is safe: the lab is kept, and a re-install changes nothing on a healthy cluster.
set -euo pipefail
KB=.venv/bin/keybuzz
LAB_DIR=${KEYBUZZ_LAB_DIR:-/srv/keybuzz-lab/default}
SUBNET=${KEYBUZZ_LAB_SUBNET:-10.77.0.0/16}
ENGINE=${KEYBUZZ_LAB_ENGINE:-podman}
SITE="$LAB_DIR/site"

$KB lab up --dir "$LAB_DIR" --subnet "$SUBNET" --engine "$ENGINE"
$KB lint --site "$SITE"
$KB install --site "$SITE"
$KB validate --site "$SITE"

read -r vip maria_vip monitor < <(.venv/bin/python -c 'import sys, pathlib; from keybuzz.registry import load_site
site = load_site(pathlib.Path(sys.argv[1])); lbs = site.config.load_balancers
print(*(next(str(lb.vip) for lb in lbs if port in lb.ports) for port in (5432, 3306)), site.with_role("monitor")[0].private_ip)' "$SITE")
cat <<MSG

The lab is up and the platform is deployed on it.
  site:        $SITE   (use: export KEYBUZZ_SITE=$SITE)
  lab hosts:   $KB lab status --dir $LAB_DIR
  PostgreSQL:  psql "host=$vip port=5432 dbname=keybuzz user=keybuzz"   (password: $SITE/credentials/postgres.env)
               read-only replicas on port 5433, PgBouncer on 6432
  Redis:       redis-cli -h $vip -p 6379 --askpass                   (password: $SITE/credentials/redis.env)
  RabbitMQ:    amqp://keybuzz-app:<password>@$vip:5672/keybuzz         (password: $SITE/credentials/rabbitmq.env)
  S3:          http://$vip:9000 (SeaweedFS)                          (keys: $SITE/credentials/minio.env)
  MariaDB:     mysql -h $maria_vip -P 3306 -u erpnext -p erpnext       (password: $SITE/credentials/mariadb.env;
               through the lab's HAProxy stand-in for ProxySQL)
  Prometheus:  http://$monitor:9090   Alertmanager: http://$monitor:9093   (login: $SITE/credentials/monitoring.env;
               $KB validate monitoring --site $SITE;
               no Grafana server can run here: dashboards rendered to /opt/keybuzz/monitoring/config/grafana)
  drills:      $KB failover postgres --scenario poweroff-leader --site $SITE
               $KB failover mariadb --scenario poweroff-writer --site $SITE
               $KB failover MODULE --scenario list --site $SITE   (every scenario of a module)
  tear down:   $KB lab down --dir $LAB_DIR
MSG
