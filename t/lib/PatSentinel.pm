package PatSentinel;

# A Redis Sentinel group on free loopback ports, for PatTest: one master,
# one replica (diskless, no sync delay), three sentinels started with
# `redis-server CONF --sentinel`, each with a writable config file and
# down-after-milliseconds 1000.  Every process is a PatTest Redis, torn
# down by pid with the rest.
#
#   my $g = PatSentinel->new($t, %o);     # ready: synced, every sentinel
#                                         # knows the replica and the others
#   $g->addrs                 # "127.0.0.1:P1 127.0.0.1:P2 127.0.0.1:P3"
#   $g->master / $g->replica  # the PatTest Redis records, as started
#   $g->named                 # the port the sentinels name as master now
#   $g->wait_master($port, $timeout)   # until every live sentinel names it
#   $g->wait_synced($replica)          # master_link_status:up
#   PatSentinel::poll_checks($x, $secs, $token, $cond)
#       checks of the token through nginx $x every 50 ms until
#       $cond->($status, \%seen) is true: (\%seen, seconds) or (\%seen, undef)
#   PatSentinel::counts(\%seen)         # "200: 3 503: 41"
#
# Options: name (default mymaster), password (data nodes: requirepass and
# masterauth, and the sentinels' auth-pass), sentinel_password
# (requirepass of the sentinels), conf (more lines for the data nodes),
# tls (a PatTLS set: every node and sentinel on TLS only, replication
# too), sentinel_conf (more lines for the sentinels).

use strict;
use warnings;

use Time::HiRes ();
use PatTest ();

sub new {
    my ($class, $t, %o) = @_;
    my $self = bless { t => $t, name => $o{name} // 'mymaster', %o }, $class;

    my $extra = "repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n";
    $extra .= "masterauth $o{password}\n" if defined $o{password};
    $extra .= "$o{conf}\n" if defined $o{conf};

    my $m = $t->start_redis(name => 'master', password => $o{password},
                            conf => $extra, tls => $o{tls});
    my $r = $t->start_redis(name => 'replica', password => $o{password},
                            conf => "$extra\nreplicaof 127.0.0.1 $m->{port}\n",
                            tls => $o{tls});
    $self->{master} = $m;
    $self->{replica} = $r;
    $self->wait_synced($r);

    for my $i (1 .. 3) {
        my $c = "sentinel monitor $self->{name} 127.0.0.1 $m->{port} 2\n"
              . "sentinel down-after-milliseconds $self->{name} 1000\n"
              . "sentinel failover-timeout $self->{name} 10000\n"
              . "sentinel parallel-syncs $self->{name} 1\n";
        $c .= "sentinel auth-pass $self->{name} $o{password}\n" if defined $o{password};
        $c .= "$o{sentinel_conf}\n" if defined $o{sentinel_conf};
        push @{ $self->{sentinels} },
            $t->start_redis(name => "sentinel$i", sentinel => $c,
                            password => $o{sentinel_password}, tls => $o{tls});
    }

    # a failover needs sentinels that know each other and the replica
    my $ok = PatTest::until_ok(30, sub {
        for my $s (@{ $self->{sentinels} }) {
            my %m = $self->sentinel_master($s);
            return 0 unless ($m{'num-other-sentinels'} // 0) == 2
                         && ($m{'num-slaves'} // 0) == 1;
        }
        return 1;
    });
    die "PatSentinel: the sentinels did not find each other and the replica in 30 s\n" unless $ok;

    return $self;
}

sub master    { $_[0]{master} }
sub replica   { $_[0]{replica} }
sub sentinels { @{ $_[0]{sentinels} } }
sub name      { $_[0]{name} }
sub addrs     { join ' ', map { "127.0.0.1:$_->{port}" } @{ $_[0]{sentinels} } }

# the record of the data node on port
sub node {
    my ($self, $port) = @_;
    for ($self->{master}, $self->{replica}) { return $_ if $_->{port} == $port }
    die "PatSentinel: no node on port $port";
}

# an array reply as a list (redis-cli --raw, for TLS, gives lines)
sub _list {
    my ($rep) = @_;
    return @$rep if ref $rep eq 'ARRAY';
    return () if !defined $rep || ref $rep;
    return split /\r?\n/, $rep;
}

sub sentinel_master {
    my ($self, $s) = @_;
    return _list(eval { $self->{t}->redis_cmd_on($s, 'SENTINEL', 'master', $self->{name}) });
}

# the port that sentinel s (default: the first that answers) names as master
sub named {
    my ($self, $s) = @_;
    for my $x ($s ? ($s) : @{ $self->{sentinels} }) {
        next unless $x->{running};
        my @rep = _list(eval { $self->{t}->redis_cmd_on($x, 'SENTINEL', 'get-master-addr-by-name', $self->{name}) });
        return $rep[1] if @rep == 2;
    }
    return undef;
}

sub wait_master {
    my ($self, $port, $timeout) = @_;
    return PatTest::until_ok($timeout // 30, sub {
        for my $s (@{ $self->{sentinels} }) {
            next unless $s->{running} && !$s->{stopped};
            my $n = $self->named($s);
            return 0 unless defined $n && $n == $port;
        }
        my @role = _list(eval { $self->{t}->redis_cmd_on($self->node($port), 'ROLE') });
        return @role && $role[0] eq 'master';
    });
}

sub wait_synced {
    my ($self, $r, $timeout) = @_;
    my $ok = PatTest::until_ok($timeout // 30, sub {
        my $info = eval { $self->{t}->redis_cmd_on($r, 'INFO', 'replication') } // '';
        return !ref $info && $info =~ /^master_link_status:up\r?$/m;
    });
    die "PatSentinel: $r->{name} not in sync after 30 s\n" unless $ok;
    return 1;
}

sub poll_checks {
    my ($x, $secs, $tok, $cond) = @_;
    my %seen;
    my $t0 = Time::HiRes::time();
    while (Time::HiRes::time() - $t0 < $secs) {
        my $s = $x->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status};
        $seen{$s}++;
        return (\%seen, Time::HiRes::time() - $t0) if $cond->($s, \%seen);
        Time::HiRes::sleep(0.05);
    }
    return (\%seen, undef);
}

sub counts { my ($h) = @_; join ' ', map { "$_: $h->{$_}" } sort keys %$h }

1;
