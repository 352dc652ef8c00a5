package PatProxy;

# Network trouble between nginx and Redis, for tests: a TCP endpoint on a
# port of our own that delays every byte, either way, by a fixed time
# (delay_proxy), that goes silent while a file exists, without closing
# anything (silent_proxy), or that accepts and closes at once (serve with
# a handler that closes).  Each runs in a child process; stop() ends it.

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time);
use Exporter 'import';

our @EXPORT_OK = qw(serve delay_proxy silent_proxy stop resp_commands);

# the whole RESP commands at the head of $$buf (arrays of bulk strings),
# taken out of it: a list of [ARG, ...]; a partial one stays
sub resp_commands {
    my ($buf) = @_;
    my @cmds;
    while ($$buf =~ /\A\*(\d+)\r\n/) {
        my ($argc, $pos, @argv) = ($1, length($&));
        for (1 .. $argc) {
            last unless substr($$buf, $pos) =~ /\A\$(\d+)\r\n/;
            my ($len, $hl) = ($1, length($&));
            last if length($$buf) < $pos + $hl + $len + 2;
            push @argv, substr($$buf, $pos + $hl, $len);
            $pos += $hl + $len + 2;
        }
        last if @argv < $argc;
        substr($$buf, 0, $pos) = '';
        push @cmds, \@argv;
    }
    return @cmds;
}

# listen on 127.0.0.1:port; each connection is handed to $conn in a child
sub serve {
    my ($port, $conn) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                    Listen => 128, ReuseAddr => 1) or die "listen: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{CHLD} = 'IGNORE';
        while (my $c = $srv->accept) {
            my $k = fork // POSIX::_exit(1);
            if (!$k) { $conn->($c); POSIX::_exit(0) }
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    return $pid;
}

# port -> 127.0.0.1:to_port, every chunk held back $delay seconds
sub delay_proxy {
    my ($port, $to_port, $delay) = @_;
    return serve($port, sub {
        my ($c) = @_;
        my $r = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$to_port") or return;
        my %peer = (fileno $c => $r, fileno $r => $c);
        my $sel = IO::Select->new($c, $r);
        my @line;    # [due, socket, bytes], in order
        while (1) {
            my $wait = @line ? $line[0][0] - time : 1;
            for my $s ($sel->can_read($wait > 0 ? $wait : 0)) {
                my $got = sysread($s, my $buf, 65536);
                return unless $got;
                push @line, [time + $delay, $peer{ fileno $s }, $buf];
            }
            while (@line && $line[0][0] <= time) {
                my $x = shift @line;
                syswrite($x->[1], $x->[2]) // return;
            }
        }
    });
}

# port -> 127.0.0.1:to_port; while $flag exists, nothing is read or
# forwarded either way, and every connection stays open: a partition
sub silent_proxy {
    my ($port, $to_port, $flag) = @_;
    return serve($port, sub {
        my ($c) = @_;
        my $r = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$to_port") or return;
        my %peer = (fileno $c => $r, fileno $r => $c);
        my $sel = IO::Select->new($c, $r);
        while (1) {
            if (-e $flag) { select undef, undef, undef, 0.02; next }
            for my $s ($sel->can_read(0.02)) {
                my $got = sysread($s, my $buf, 65536);
                return unless $got;
                syswrite($peer{ fileno $s }, $buf) // return;
            }
        }
    });
}

sub stop {
    my ($pid) = @_;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

1;
