package PatCluster;

# A Redis Cluster on free loopback ports, for PatTest: six nodes (three
# masters, three replicas) made by `redis-cli --cluster create ...
# --cluster-replicas 1`, each with an explicit --cluster-port,
# cluster-node-timeout 2000, cluster-require-full-coverage no and
# diskless replication without delay.  new() returns once every node
# says cluster_state:ok, every slot is served, every replica's link is
# up and every master has heard from its replica.  Every node is a
# PatTest Redis, torn down by pid with the rest.
#
#   my $c = PatCluster->new($t);
#   $c->nodes / $c->masters / $c->replicas   # PatTest Redis records
#   $c->seeds                  # "127.0.0.1:P1 127.0.0.1:P2 127.0.0.1:P3"
#   $c->owner($slot)           # the record of the master serving it
#   $c->wait_ok($timeout)      # cluster_state:ok everywhere, all slots
#   $c->wait_synced($replica)  # master_link_status:up
#   $c->wait_caught_up($master, $replica)  # it holds every write so far
#   PatCluster::slot($key)     # the key's slot (CRC16 of its hash tag)
#
# Options: conf (more lines for every node), node_timeout (ms), tls (a
# PatTLS set: every node on TLS only, with tls-cluster and
# tls-replication; the harness then asks the nodes through redis-cli).

use strict;
use warnings;

use Time::HiRes ();
use PatTest ();

sub new {
    my ($class, $t, %o) = @_;
    my $self = bless { t => $t, %o }, $class;
    my $timeout = $o{node_timeout} // 2000;

    for my $i (1 .. 6) {
        my $cport = $t->free_port;
        my $conf = "cluster-enabled yes\ncluster-port $cport\n"
                 . "cluster-config-file nodes.conf\n"
                 . "cluster-node-timeout $timeout\n"
                 . "cluster-require-full-coverage no\n"
                 . "repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n";
        # the bus's connections between nodes are TLS with a client
        # certificate (a node asks for one on its bus port)
        $conf .= "tls-cluster yes\ntls-client-cert-file $o{tls}{client_cert}\n"
               . "tls-client-key-file $o{tls}{client_key}\n" if $o{tls};
        $conf .= "$o{conf}\n" if defined $o{conf};
        push @{ $self->{nodes} }, $t->start_redis(name => "node$i", conf => $conf, tls => $o{tls});
    }

    my @addrs = map { "127.0.0.1:$_->{port}" } @{ $self->{nodes} };
    my $tls = $o{tls} ? "--tls --insecure --cacert $o{tls}{ca} --cert $o{tls}{client_cert} "
                        . "--key $o{tls}{client_key} " : '';
    my $out = `timeout 60 redis-cli $tls--cluster create @addrs --cluster-replicas 1 --cluster-yes 2>&1`;
    die "PatCluster: redis-cli --cluster create failed:\n$out" if $?;

    $self->wait_ok(30) or die "PatCluster: the cluster is not ok after 30 s\n";
    for my $r ($self->replicas) {
        $self->wait_synced($r) or die "PatCluster: replica $r->{name} not in sync after 30 s\n";
    }
    # and every master has heard its replica's first REPLCONF ACK (up to
    # a second after the sync): until then a master streams nothing to
    # it, and a WAIT there times out
    for my $m ($self->masters) {
        PatTest::until_ok(10, sub {
            my $info = eval { $t->redis_cmd_on($m, 'INFO', 'replication') } // '';
            !ref $info && $info =~ /^slave0:.*,offset=[1-9]/m;
        }) or die "PatCluster: master $m->{name} has no acknowledgement from its replica after 10 s\n";
    }
    return $self;
}

sub nodes { @{ $_[0]{nodes} } }

sub _role {
    my ($self, $r) = @_;
    my $role = eval { $self->{t}->redis_cmd_on($r, 'ROLE') };
    return $role->[0] if ref $role eq 'ARRAY';
    # redis-cli --raw (TLS): one element a line
    return defined $role && !ref $role && $role =~ /^(master|slave)$/m ? $1 : '';
}

sub masters  { my $s = shift; grep { $_->{running} && $s->_role($_) eq 'master' } $s->nodes }
sub replicas { my $s = shift; grep { $_->{running} && $s->_role($_) eq 'slave' } $s->nodes }
sub seeds    { my $s = shift; join ' ', map { "127.0.0.1:$_->{port}" } ($s->nodes)[0 .. 2] }

# the slot ranges of a live node's CLUSTER NODES (text, so that it reads
# the same through redis-cli): [[from, to, port of the master], ...]
sub slots {
    my ($self) = @_;
    for my $r (grep { $_->{running} && !$_->{stopped} } $self->nodes) {
        my $nodes = eval { $self->{t}->redis_cmd_on($r, 'CLUSTER', 'NODES') };
        next if !defined $nodes || ref $nodes;
        my @ranges;
        for my $line (split /\r?\n/, $nodes) {
            my ($id, $addr, $flags, $master, $ping, $pong, $epoch, $link, @slots) = split ' ', $line;
            next unless defined $flags && $flags =~ /\bmaster\b/;
            my ($port) = $addr =~ /:(\d+)@/ or next;
            for (@slots) {
                next if /^\[/;    # a slot being migrated or imported
                my ($lo, $hi) = /^(\d+)(?:-(\d+))?$/ or next;
                push @ranges, [ $lo, $hi // $lo, $port ];
            }
        }
        return [ sort { $a->[0] <=> $b->[0] } @ranges ];
    }
    return [];
}

sub owner {
    my ($self, $slot) = @_;
    for my $range (@{ $self->slots }) {
        next unless $slot >= $range->[0] && $slot <= $range->[1];
        for my $r ($self->nodes) { return $r if $r->{port} == $range->[2] }
    }
    return undef;
}

sub wait_synced {
    my ($self, $r, $timeout) = @_;
    return PatTest::until_ok($timeout // 30, sub {
        my $info = eval { $self->{t}->redis_cmd_on($r, 'INFO', 'replication') } // '';
        !ref $info && $info =~ /^master_link_status:up\r?$/m;
    });
}

# The replica has applied everything the master wrote until now.  Its
# link being up is not enough: after a (diskless) full sync the master
# streams nothing until the replica's first REPLCONF ACK, up to a second
# later, and a WAIT on a connection that wrote nothing returns at once.
sub wait_caught_up {
    my ($self, $m, $r, $timeout) = @_;
    my $t = $self->{t};
    my ($want) = ($t->redis_cmd_on($m, 'INFO', 'replication') // '') =~ /^master_repl_offset:(\d+)/m;
    return 0 unless defined $want;
    return PatTest::until_ok($timeout // 10, sub {
        my $info = eval { $t->redis_cmd_on($r, 'INFO', 'replication') } // '';
        return 0 if ref $info;
        my ($have) = $info =~ /^slave_repl_offset:(\d+)/m;
        defined $have && $have >= $want;
    });
}

sub wait_ok {
    my ($self, $timeout) = @_;
    return PatTest::until_ok($timeout // 30, sub {
        for my $r (grep { $_->{running} && !$_->{stopped} } $self->nodes) {
            my $info = eval { $self->{t}->redis_cmd_on($r, 'CLUSTER', 'INFO') } // '';
            return 0 if ref $info || $info !~ /^cluster_state:ok\r?$/m
                     || $info !~ /^cluster_slots_ok:16384\r?$/m;
        }
        return 1;
    });
}

# CRC16-CCITT (XMODEM) of the key's hash tag, modulo 16384
sub crc16 {
    my $crc = 0;
    for my $c (unpack 'C*', $_[0]) {
        $crc ^= $c << 8;
        for (1 .. 8) { $crc = $crc & 0x8000 ? ($crc << 1) ^ 0x1021 : $crc << 1; $crc &= 0xffff }
    }
    return $crc;
}

sub slot {
    my ($k) = @_;
    my $s = index($k, '{');
    if ($s >= 0) {
        my $e = index($k, '}', $s + 1);
        $k = substr($k, $s + 1, $e - $s - 1) if $e > $s + 1;
    }
    return crc16($k) % 16384;
}

1;
