package PatTest;

# Test harness for ngx_http_auth_pat_module.
#
# Starts real redis-server / nginx processes inside a per-test temp dir and
# tears them down (by pid, never by name) from done(), DESTROY and END.
#
# Environment:
#   PAT_KEEP=1          keep the temp dir (its path is printed as a diag)
#   PAT_MODULE=path     module .so to load (default <repo>/build/ngx_http_auth_pat_module.so)
#   PAT_NGINX=path      nginx binary (default /usr/sbin/nginx)
#   PAT_REDIS=path      redis-server binary (default /usr/bin/redis-server)

use strict;
use warnings;

use Test::Builder ();
use PatOpenAPI ();
use HTTP::Tiny ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use IO::Select ();
use File::Temp ();
use File::Spec ();
use File::Path ();
use Cwd ();
use POSIX ();
use JSON::PP ();
use Time::HiRes ();
use Scalar::Util ();
use Socket ();

our $VERSION = '0.01';

our $NGINX = $ENV{PAT_NGINX} || '/usr/sbin/nginx';
our $REDIS = $ENV{PAT_REDIS} || '/usr/bin/redis-server';

our $REDIS_TIMEOUT = 5;     # seconds, per redis_cmd
our $START_TIMEOUT = 10;    # seconds, process start / stop / reload
our $POLL          = 0.025; # seconds between polls

my $REPO_ROOT;
{
    my ($vol, $dir) = File::Spec->splitpath(File::Spec->rel2abs(__FILE__));
    my $lib = File::Spec->catpath($vol, $dir, '');
    $REPO_ROOT = Cwd::abs_path(File::Spec->catdir($lib, File::Spec->updir, File::Spec->updir));
}

my @INSTANCES;      # weak refs, for END teardown
my %USED_PORTS;     # ports handed out by free_port in this process

# make sure teardown also happens on Ctrl-C / kill (END blocks run on exit())
for my $sig (qw(INT TERM HUP)) {
    my $cur = $SIG{$sig};
    next if defined $cur && $cur ne '' && $cur ne 'DEFAULT';
    my $num = eval { no strict 'refs'; &{"POSIX::SIG$sig"}() } || 15;
    $SIG{$sig} = sub { exit(128 + $num) };
}

END {
    local ($?, $!, $@);
    for my $t (@INSTANCES) {
        next unless $t;
        eval { $t->_teardown; 1 } or warn "PatTest teardown: $@";
    }
}

# ---------------------------------------------------------------------------
# construction / files

sub new {
    my ($class, %o) = @_;
    my $keep = $ENV{PAT_KEEP} ? 1 : 0;
    my $dir  = File::Temp::tempdir('pat-XXXXXX', TMPDIR => 1, CLEANUP => !$keep);
    $dir = Cwd::abs_path($dir);
    chmod 0755, $dir or die "chmod $dir: $!";
    my $self = bless {
        dir       => $dir,
        owner_pid => $$,
        redises   => [],
        redis     => undef,
        workers   => 2,
        %o,
    }, $class;
    Test::Builder->new->diag("PatTest: keeping temp dir $dir") if $keep;
    push @INSTANCES, $self;
    Scalar::Util::weaken($INSTANCES[-1]);
    return $self;
}

sub dir { $_[0]{dir} }

sub repo_root { $REPO_ROOT }

sub module_path {
    return $ENV{PAT_MODULE}
        || File::Spec->catfile($REPO_ROOT, 'build', 'ngx_http_auth_pat_module.so');
}

sub path {
    my ($self, @parts) = @_;
    return File::Spec->catfile($self->{dir}, @parts);
}

sub write_file {
    my ($self, $name, $content, $mode) = @_;
    $mode = 0644 unless defined $mode;
    my $path = File::Spec->file_name_is_absolute($name) ? $name : $self->path($name);
    my ($vol, $d) = File::Spec->splitpath($path);
    my $parent = File::Spec->catpath($vol, $d, '');
    if (!-d $parent) {
        File::Path::make_path($parent, { mode => 0755 });
        chmod 0755, $parent;
    }
    open my $fh, '>:raw', $path or die "write $path: $!";
    print {$fh} (defined $content ? $content : '') or die "write $path: $!";
    close $fh or die "close $path: $!";
    chmod $mode, $path or die "chmod $path: $!";
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = File::Spec->file_name_is_absolute($name) ? $name : $self->path($name);
    open my $fh, '<:raw', $path or return undef;
    local $/;
    my $c = <$fh>;
    return defined $c ? $c : '';
}

sub _random_alnum {
    my ($n) = @_;
    my @chars = ('a' .. 'z', 'A' .. 'Z', '0' .. '9');    # 62
    my $out = '';
    my $fh;
    open $fh, '<:raw', '/dev/urandom' or undef $fh;
    while (length $out < $n) {
        my $b;
        if ($fh) { read($fh, $b, 64) == 64 or die "read /dev/urandom: $!" }
        else     { $b = join '', map { chr int rand 256 } 1 .. 64 }
        for my $c (unpack 'C*', $b) {
            next if $c >= 248;    # 248 = 62*4, avoid modulo bias
            $out .= $chars[$c % 62];
            last if length $out >= $n;
        }
    }
    return $out;
}

sub key {
    my ($self) = @_;
    $self->{key} = _random_alnum(48) unless defined $self->{key};
    return $self->{key};
}

sub key_file {
    my ($self) = @_;
    $self->{key_file} ||= $self->write_file('pat.key', $self->key, 0644);
    return $self->{key_file};
}

# a port is free when nobody listens on it and it can be bound
sub port_bindable {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 0);
    return 0 unless $s;
    close $s;
    return 1;
}

sub free_port {
    my ($self) = @_;
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
            Listen => 1, ReuseAddr => 0,
        ) or die "free_port: $!";
        my $port = $s->sockport;
        close $s;
        next if $USED_PORTS{$port}++;
        return $port;
    }
    die "free_port: could not find an unused port";
}

sub port  { my $s = shift; $s->{port}  ||= $s->free_port }
sub port2 { my $s = shift; $s->{port2} ||= $s->free_port }

# ---------------------------------------------------------------------------
# process helpers

# true if pid exists and is not a zombie
sub pid_alive {
    my ($pid) = @_;
    $pid = $_[1] if ref $pid;    # allow $t->pid_alive($pid)
    return 0 unless $pid && $pid > 0;
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $st = <$fh>;
        return 0 if defined $st && $st =~ /\)\s+Z\s/;
        return 0 if defined $st && $st =~ /\)\s+X\s/;
    }
    return 1;
}

# until_ok($secs, $cb): calls cb every 50 ms until it is true (1) or
# $secs have passed (0)
sub until_ok {
    my ($secs, $cb) = @_;
    my $end = Time::HiRes::time() + $secs;
    for (;;) {
        return 1 if $cb->();
        return 0 if Time::HiRes::time() >= $end;
        Time::HiRes::sleep(0.05);
    }
}

sub _wait_until {
    my ($timeout, $cb) = @_;
    my $end = Time::HiRes::time() + $timeout;
    while (1) {
        my $r = $cb->();
        return $r if $r;
        return 0 if Time::HiRes::time() >= $end;
        Time::HiRes::sleep($POLL);
    }
}

# reap our own child if it is ours; returns 1 when the pid is gone
sub _reap {
    my ($pid) = @_;
    my $r = waitpid($pid, POSIX::WNOHANG());
    return 1 if $r == $pid || ($r == -1 && !pid_alive($pid));
    return !pid_alive($pid);
}

sub _proc_stat {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return;
    my $st = <$fh>;
    return unless defined $st;
    my $rp = rindex($st, ')');
    return if $rp < 0;
    my @f = split ' ', substr($st, $rp + 2);
    # $f[0] = state, $f[1] = ppid
    return { state => $f[0], ppid => $f[1] };
}

sub _cmdline {
    my ($pid) = @_;
    open my $fh, '<:raw', "/proc/$pid/cmdline" or return '';
    local $/;
    my $c = <$fh>;
    $c = '' unless defined $c;
    $c =~ s/\0+$//;
    $c =~ s/\0/ /g;
    return $c;
}

sub _children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return;
    for my $e (readdir $dh) {
        next unless $e =~ /^\d+$/;
        my $st = _proc_stat($e) or next;
        next unless $st->{ppid} == $ppid;
        next if $st->{state} eq 'Z' || $st->{state} eq 'X';
        push @kids, $e + 0;
    }
    closedir $dh;
    return sort { $a <=> $b } @kids;
}

# ---------------------------------------------------------------------------
# redis

sub start_redis {
    my ($self, %o) = @_;
    my $n    = @{ $self->{redises} } + 1;
    my $name = defined $o{name} ? $o{name} : "redis$n";
    die "start_redis: name '$name' already used"
        if grep { $_->{name} eq $name } @{ $self->{redises} };
    my $dir = $self->path($name);
    File::Path::make_path($dir);
    chmod 0755, $dir;

    my $r = {
        name     => $name,
        dir      => $dir,
        password => $o{password},
        aof      => $o{aof} ? 1 : 0,
        extra    => defined $o{conf} ? $o{conf} : '',
        tls      => $o{tls},
        sentinel => $o{sentinel},   # the sentinel's own configuration lines
        unix     => $o{unix} ? File::Spec->catfile($dir, 'redis.sock') : undef,
        log      => File::Spec->catfile($dir, 'redis.log'),
        conf_file => File::Spec->catfile($dir, 'redis.conf'),
        pid      => undef,
        running  => 0,
        stopped  => 0,
    };

    my $last_err;
    for my $attempt (1 .. 5) {
        $r->{port} = $self->free_port;
        $r->{addr} = "127.0.0.1:$r->{port}";
        $self->_write_redis_conf($r);
        my $err = $self->_spawn_redis($r);
        if (!defined $err) {
            push @{ $self->{redises} }, $r;
            $self->{redis} ||= $r;
            return $r;
        }
        $last_err = $err;
        last unless $err =~ /address already in use|bind/i;
    }
    die "start_redis($name) failed: $last_err";
}

sub _write_redis_conf {
    my ($self, $r) = @_;
    my $c = '';
    if (defined $r->{sentinel}) {
        # redis-server CONF --sentinel: it rewrites this file as it learns
        if (my $tls = $r->{tls}) {
            $c .= "port 0\ntls-port $r->{port}\ntls-replication yes\n";
            $c .= "tls-cert-file $tls->{cert}\ntls-key-file $tls->{key}\n";
            $c .= "tls-ca-cert-file $tls->{ca}\n";
            $c .= "tls-auth-clients " . ($tls->{auth_clients} ? 'yes' : 'no') . "\n";
        } else {
            $c .= "port $r->{port}\n";
        }
        $c .= "bind 127.0.0.1\nprotected-mode no\n";
        $c .= "daemonize no\ndir $r->{dir}\nlogfile $r->{log}\n";
        $c .= "loglevel notice\n$r->{sentinel}\n";
        $c .= "requirepass $r->{password}\n" if defined $r->{password};
        $self->write_file($r->{conf_file}, $c, 0644);
        return;
    }
    if ($r->{tls}) {
        # TLS only: no plaintext port at all
        my $tls = $r->{tls};
        $c .= "port 0\ntls-port $r->{port}\n";
        $c .= "tls-cert-file $tls->{cert}\ntls-key-file $tls->{key}\n";
        $c .= "tls-ca-cert-file $tls->{ca}\n";
        $c .= "tls-auth-clients " . ($tls->{auth_clients} ? 'yes' : 'no') . "\n";
        $c .= "tls-replication yes\n";
    } else {
        $c .= "port $r->{port}\n";
    }
    $c .= "bind 127.0.0.1\n";
    $c .= "protected-mode no\n";
    $c .= "daemonize no\n";
    $c .= "dir $r->{dir}\n";
    $c .= "logfile $r->{log}\n";
    $c .= "loglevel notice\n";
    $c .= "save \"\"\n";
    $c .= "appendonly " . ($r->{aof} ? 'yes' : 'no') . "\n";
    $c .= "appendfsync always\n" if $r->{aof};
    if (defined $r->{password}) {
        $c .= "requirepass $r->{password}\n";
    }
    if ($r->{unix}) {
        $c .= "unixsocket $r->{unix}\n";
        $c .= "unixsocketperm 777\n";
    }
    $c .= "$r->{extra}\n" if length $r->{extra};
    $self->write_file($r->{conf_file}, $c, 0644);
}

# returns undef on success, error string otherwise
# (loading => 1: a LOADING reply counts as started, for a Redis that is
# still reading its data)
sub _spawn_redis {
    my ($self, $r, %o) = @_;
    unlink $r->{unix} if $r->{unix};
    my $log_off = -s $r->{log} || 0;

    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        # child: never return into the test code
        eval {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>>', $r->{log};
            open STDERR, '>&', \*STDOUT;
            exec { $REDIS } $REDIS, $r->{conf_file},
                defined $r->{sentinel} ? ('--sentinel') : ();
        };
        POSIX::_exit(127);
    }
    $r->{pid}     = $pid;
    $r->{running} = 1;
    $r->{stopped} = 0;

    my $died;
    my $ok = _wait_until($START_TIMEOUT, sub {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) { $died = $?; return 1 }
        return 0 if $r->{unix} && !-S $r->{unix};
        my $rep = eval { $self->redis_cmd_on($r, 'PING') };
        return 1 if $o{loading} && (redis_err($rep) // '') =~ /^LOADING/;
        return defined $rep && !ref $rep && $rep eq 'PONG';
    });

    if (defined $died || !$ok) {
        if (!defined $died) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
        }
        $r->{running} = 0;
        my $log = $self->read_file($r->{log});
        $log = defined $log ? substr($log, $log_off) : '';
        return (defined $died ? "redis exited with status $died" : "redis not ready after ${START_TIMEOUT}s")
            . "\n--- redis log ---\n$log";
    }
    return undef;
}

sub _redis_by {
    my ($self, $r) = @_;
    return $r if ref $r;
    if (!defined $r) {
        return $self->{redis} || die "no redis started";
    }
    for (@{ $self->{redises} }) { return $_ if $_->{name} eq $r }
    die "no redis named '$r'";
}

sub redis { my ($self, $name) = @_; return defined $name ? $self->_redis_by($name) : $self->{redis} }

sub stop_redis {
    my ($self, $r) = @_;
    $r = $self->_redis_by($r);
    my $pid = $r->{pid};
    return 1 unless $r->{running} && $pid;
    kill 'TERM', $pid;
    kill 'CONT', $pid if $r->{stopped};
    my $gone = _wait_until($START_TIMEOUT, sub { _reap($pid) });
    if (!$gone) {
        kill 'KILL', $pid;
        _wait_until($START_TIMEOUT, sub { _reap($pid) });
    }
    $r->{running} = 0;
    $r->{stopped} = 0;
    return 1;
}

sub kill_redis {
    my ($self, $r, $sig) = @_;
    $r = $self->_redis_by($r);
    $sig = 'KILL' unless defined $sig;
    $sig =~ s/^SIG//;
    my $pid = $r->{pid};
    die "kill_redis: redis '$r->{name}' not running" unless $r->{running} && $pid;
    kill $sig, $pid or die "kill $sig $pid: $!";
    if ($sig eq 'STOP') {
        _wait_until($START_TIMEOUT, sub { my $s = _proc_stat($pid); $s && $s->{state} eq 'T' });
        $r->{stopped} = 1;
    }
    elsif ($sig eq 'CONT') {
        _wait_until($START_TIMEOUT, sub { my $s = _proc_stat($pid); !$s || $s->{state} ne 'T' });
        $r->{stopped} = 0;
    }
    elsif ($sig eq 'KILL' || $sig eq 'TERM' || $sig eq 'INT' || $sig eq 'QUIT') {
        kill 'CONT', $pid if $r->{stopped};
        _wait_until($START_TIMEOUT, sub { _reap($pid) });
        $r->{running} = 0;
        $r->{stopped} = 0;
    }
    return 1;
}

sub restart_redis {
    my ($self, $r, %o) = @_;
    $r = $self->_redis_by($r);
    $self->stop_redis($r);
    my $err;
    # same port; it may take a moment until it can be bound again
    my $ok = _wait_until($START_TIMEOUT, sub {
        $err = $self->_spawn_redis($r, %o);
        return 1 unless defined $err;
        return 0 if $err =~ /address already in use/i;
        die "restart_redis($r->{name}) failed: $err";
    });
    die "restart_redis($r->{name}) failed: $err" unless $ok;
    return $r;
}

# ---- RESP client

sub redis_cmd { my $self = shift; return $self->redis_cmd_on(undef, @_) }

sub redis_cmd_on {
    my ($self, $r, @args) = @_;
    $r = $self->_redis_by($r);
    return $self->_redis_cli($r, @args) if $r->{tls};
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $r->{port}, Proto => 'tcp',
        Timeout => $REDIS_TIMEOUT,
    ) or die "redis connect 127.0.0.1:$r->{port}: $!";
    binmode $sock;
    my $conn = { sock => $sock, buf => '', deadline => Time::HiRes::time() + $REDIS_TIMEOUT };
    if (defined $r->{password}) {
        _resp_send($conn, 'AUTH', $r->{password});
        my $a = _resp_read($conn);
        if (ref $a && ref $a eq 'PatTest::RedisError') {
            close $sock;
            return $a;
        }
    }
    _resp_send($conn, @args);
    my $reply = _resp_read($conn);
    close $sock;
    return $reply;
}

# A Redis with TLS only is asked through redis-cli (with the client
# certificate): the answer is its --raw output, chomped; an error reply
# comes back as a PatTest::RedisError, as from the RESP client.
sub _redis_cli {
    my ($self, $r, @args) = @_;
    my $tls = $r->{tls};
    my @cli = ('timeout', $REDIS_TIMEOUT, 'redis-cli', '--tls', '--insecure',
               '--cacert', $tls->{ca}, '--cert', $tls->{client_cert},
               '--key', $tls->{client_key}, '-h', '127.0.0.1',
               '-p', $r->{port});
    push @cli, '-a', $r->{password}, '--no-auth-warning' if defined $r->{password};
    # (its complaints while a Redis starts are not the test's output)
    open(my $stderr, '>&', \*STDERR) or die "dup: $!";
    open(STDERR, '>', '/dev/null') or die "/dev/null: $!";
    my $ok = open(my $fh, '-|', @cli, '--raw', @args);
    open(STDERR, '>&', $stderr) or die "dup: $!";
    die "redis-cli: $!" unless $ok;
    local $/;
    my $out = <$fh> // '';
    close $fh;
    die "redis-cli: could not connect to 127.0.0.1:$r->{port}\n"
        if $out =~ /^Could not connect|^Error:/ && $? != 0;
    $out =~ s/\r?\n\z//;
    return bless { msg => $out }, 'PatTest::RedisError'
        if $out =~ /^(ERR|WRONGTYPE|NOAUTH|WRONGPASS|READONLY|LOADING|BUSY|NOPERM|OOM) /;
    return $out;
}

sub redis_err {
    my ($self, $reply) = @_;
    $reply = $self if @_ == 1;    # allow PatTest::redis_err($x)
    return undef unless ref $reply && Scalar::Util::blessed($reply)
        && $reply->isa('PatTest::RedisError');
    return $reply->{msg};
}

sub _resp_send {
    my ($conn, @args) = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        my $b = defined $a ? "$a" : '';
        utf8::encode($b) if utf8::is_utf8($b);
        $out .= '$' . length($b) . "\r\n$b\r\n";
    }
    my $sock = $conn->{sock};
    my $off  = 0;
    my $sel  = IO::Select->new($sock);
    while ($off < length $out) {
        my $left = $conn->{deadline} - Time::HiRes::time();
        die "redis write timeout\n" if $left <= 0 || !$sel->can_write($left);
        my $n = syswrite($sock, $out, length($out) - $off, $off);
        die "redis write: $!\n" unless defined $n;
        $off += $n;
    }
}

sub _resp_fill {
    my ($conn) = @_;
    my $sel  = IO::Select->new($conn->{sock});
    my $left = $conn->{deadline} - Time::HiRes::time();
    die "redis read timeout\n" if $left <= 0 || !$sel->can_read($left);
    my $n = sysread($conn->{sock}, $conn->{buf}, 65536, length $conn->{buf});
    die "redis read: $!\n" unless defined $n;
    die "redis: connection closed\n" if $n == 0;
}

sub _resp_line {
    my ($conn) = @_;
    while (1) {
        my $i = index($conn->{buf}, "\r\n");
        if ($i >= 0) {
            my $line = substr($conn->{buf}, 0, $i);
            substr($conn->{buf}, 0, $i + 2, '');
            return $line;
        }
        _resp_fill($conn);
    }
}

sub _resp_bytes {
    my ($conn, $n) = @_;
    _resp_fill($conn) while length($conn->{buf}) < $n + 2;
    my $s = substr($conn->{buf}, 0, $n);
    substr($conn->{buf}, 0, $n + 2, '');
    return $s;
}

sub _resp_read {
    my ($conn) = @_;
    my $line = _resp_line($conn);
    my $t    = substr($line, 0, 1, '');
    if ($t eq '+') { return $line }
    if ($t eq '-') { return bless { msg => $line }, 'PatTest::RedisError' }
    if ($t eq ':') { return 0 + $line }
    if ($t eq '$') {
        return undef if $line < 0;
        return _resp_bytes($conn, $line);
    }
    if ($t eq '*') {
        return undef if $line < 0;
        return [ map { _resp_read($conn) } 1 .. $line ];
    }
    # RESP3 types, in case someone sends HELLO 3
    if ($t eq '_') { return undef }
    if ($t eq '#') { return $line eq 't' ? 1 : 0 }
    if ($t eq ',') { return 0 + $line }
    if ($t eq '(') { return $line }
    if ($t eq '=' || $t eq '!') {
        my $s = _resp_bytes($conn, $line);
        return $t eq '!' ? bless({ msg => $s }, 'PatTest::RedisError') : $s;
    }
    if ($t eq '%') { return [ map { _resp_read($conn) } 1 .. 2 * $line ] }
    if ($t eq '~' || $t eq '>') { return [ map { _resp_read($conn) } 1 .. $line ] }
    die "redis: unexpected reply type '$t$line'\n";
}

# ---------------------------------------------------------------------------
# nginx

sub html_dir {
    my ($self) = @_;
    my $d = $self->path('html');
    if (!-d $d) {
        mkdir $d or die "mkdir $d: $!";
        chmod 0755, $d;
        $self->write_file('html/index.html', "ok\n");
        $self->write_file('html/protected.txt', "secret\n");
    }
    return $d;
}

sub subst {
    my ($self, $s) = @_;
    return $s unless defined $s;
    my $need_redis = sub {
        my ($name) = @_;
        my $r = eval { $self->_redis_by($name) };
        die "nginx_conf: placeholder needs a started redis" . (defined $name ? " '$name'" : '') . "\n" unless $r;
        return $r;
    };
    $s =~ s/%%PORT%%/$self->port/ge;
    $s =~ s/%%PORT2%%/$self->port2/ge;
    $s =~ s/%%REDIS(?::([\w.-]+))?%%/'127.0.0.1:' . $need_redis->($1)->{port}/ge;
    $s =~ s{%%REDIS_UNIX(?::([\w.-]+))?%%}{
        my $r = $need_redis->($1);
        die "nginx_conf: %%REDIS_UNIX%% needs a redis started with unix => 1\n" unless $r->{unix};
        "unix:$r->{unix}"
    }ge;
    $s =~ s/%%KEY%%/$self->key_file/ge;
    $s =~ s/%%DIR%%/$self->{dir}/g;
    $s =~ s/%%HTML%%/$self->html_dir/ge;
    return $s;
}

sub conf_path { $_[0]->path('nginx.conf') }

sub nginx_conf {
    my ($self, %o) = @_;
    my $http    = defined $o{http} ? $o{http} : '';
    my $main    = defined $o{main} ? $o{main} : '';
    my $workers = defined $o{workers} ? $o{workers} : 2;
    my $load    = exists $o{load_module} ? $o{load_module} : 1;
    my $level   = $o{error_log_level} || 'info';
    my $d       = $self->{dir};

    $self->html_dir;
    for my $tmp (qw(client_body proxy fastcgi uwsgi scgi)) {
        my $p = $self->path("${tmp}_temp");
        mkdir $p unless -d $p;
        chmod 0755, $p;
    }

    my $c = '';
    $c .= "load_module " . $self->module_path . ";\n" if $load;
    $c .= <<"EOF";
daemon on;
master_process on;
worker_processes $workers;
pid $d/nginx.pid;
lock_file $d/nginx.lock;
error_log $d/error.log $level;

EOF
    $c .= $self->subst($main) . "\n" if length $main;
    $c .= <<"EOF";
events {
    worker_connections 1024;
}

http {
    access_log $d/access.log;
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;
    default_type application/octet-stream;

EOF
    $c .= $self->subst($http) . "\n}\n";

    my $port = $self->port;
    $self->{conf_uses_port} = ($c =~ /(?<![0-9])\Q$port\E(?![0-9])/) ? 1 : 0;
    $self->{workers} = $workers;
    $self->{conf}    = $c;
    return $self->write_file('nginx.conf', $c, 0644);
}

sub _run_capture {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        eval {
            open STDERR, '>&', \*STDOUT;
            open STDIN, '<', '/dev/null';
            exec { $cmd[0] } @cmd;
        };
        POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    my $rc = $? >> 8;
    $rc = 128 + ($? & 127) if $? & 127;
    return ($rc, defined $out ? $out : '');
}

sub _nginx_args {
    my ($self, $elog) = @_;
    die "nginx_conf() not called\n" unless -f $self->conf_path;
    return ($NGINX, '-p', "$self->{dir}/", '-e', $elog, '-c', $self->conf_path);
}

# `nginx -t`; returns ($exit_code, $output). Uses a separate -e log so that
# deliberate config errors don't end up in error.log.
sub nginx_test {
    my ($self) = @_;
    my ($rc, $out) = _run_capture($self->_nginx_args($self->path('nginx-cmd.log')), '-t');
    # a sanitizer report after the expected message must not pass unseen
    if ($out =~ /AddressSanitizer|LeakSanitizer|runtime error:/) {
        Test::More::fail('nginx -t: no sanitizer report');
        Test::More::diag($out);
    }
    return ($rc, $out);
}

sub nginx_pid {
    my ($self) = @_;
    my $c = $self->read_file('nginx.pid');
    return $self->{nginx_pid} unless defined $c && $c =~ /(\d+)/;
    return $1 + 0;
}

sub start_nginx {
    my ($self) = @_;
    die "start_nginx: nginx already running (pid $self->{nginx_pid})\n"
        if $self->{nginx_pid} && pid_alive($self->{nginx_pid});
    my $log_off = -s $self->path('error.log') || 0;
    my ($rc, $out) = _run_capture($self->_nginx_args($self->path('error.log')));
    $self->{nginx_started} = 1;    # error.log is meaningful from now on
    if ($rc != 0) {
        die "start_nginx: nginx exited with $rc\n$out\n--- error.log ---\n"
            . $self->_log_since($log_off);
    }
    my $pid;
    my $ok = _wait_until($START_TIMEOUT, sub {
        my $c = $self->read_file('nginx.pid');
        return 0 unless defined $c && $c =~ /(\d+)/;
        $pid = $1 + 0;
        return 0 unless pid_alive($pid);
        return 0 if $self->{conf_uses_port} && !_port_open($self->port);
        return scalar($self->worker_pids($pid)) >= $self->{workers};
    });
    $self->{nginx_pid} = $pid if $pid;
    if (!$ok) {
        my $why = !$pid ? 'no pid file' : !pid_alive($pid) ? "master $pid died" : 'port/workers not ready';
        $self->_kill_nginx_hard;
        die "start_nginx: nginx not ready after ${START_TIMEOUT}s ($why)\n$out\n--- error.log ---\n"
            . $self->_log_since($log_off);
    }
    return $pid;
}

sub _port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub _log_since {
    my ($self, $off) = @_;
    my $l = $self->error_log;
    return length($l) > $off ? substr($l, $off) : '';
}

sub worker_pids {
    my ($self, $master) = @_;
    $master ||= $self->{nginx_pid} || $self->nginx_pid;
    return () unless $master;
    return grep { _cmdline($_) =~ /worker process/ } _children_of($master);
}

# Waits (up to 5 s) until every worker of this nginx has its command
# connection up and, with a cache, its subscriber subscribed, as Redis'
# CLIENT LIST shows them by name.  $via: the PatTest whose redis_cmd
# reaches that Redis (default: this one).
sub wait_linked {
    my ($self, $via, %o) = @_;
    $via ||= $self;
    my $sub = exists $o{subscriber} ? $o{subscriber} : 1;
    for (1 .. 100) {
        my %pids = map { $_ => 1 } $self->worker_pids;
        my @list = split /\n/, $via->redis_cmd('CLIENT', 'LIST');
        my $n = grep { /name=auth_pat:sub:(\d+)/ && $pids{$1} && / sub=[1-9]/ } @list;
        my $m = grep { /name=auth_pat:cmd:(\d+)/ && $pids{$1} } @list;
        return 1 if keys %pids && $m == keys %pids && (!$sub || $n == keys %pids);
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

sub reload {
    my ($self) = @_;
    my $master = $self->{nginx_pid} or die "reload: nginx not running\n";
    die "reload: nginx master $master not alive\n" unless pid_alive($master);
    my %old = map { $_ => 1 } _children_of($master);
    my $log_off = length $self->error_log;

    my ($rc, $out) = _run_capture($self->_nginx_args($self->path('nginx-cmd.log')), '-s', 'reload');
    die "reload: nginx -s reload exited with $rc\n$out" if $rc != 0;

    my $want = $self->{workers};
    my $err;
    my $ok = _wait_until($START_TIMEOUT, sub {
        my $new_log = $self->_log_since($log_off);
        if ($new_log =~ /^.*\[emerg\].*$/m) { $err = $new_log; return 1 }
        my @new = grep { !$old{$_} && _cmdline($_) =~ /worker process$/ } _children_of($master);
        return @new >= $want;
    });
    die "reload: failed\n--- error.log ---\n$err" if defined $err;
    die "reload: no new workers after ${START_TIMEOUT}s\n--- error.log ---\n"
        . $self->_log_since($log_off) unless $ok;
    # let the old generation finish (not fatal if it lingers)
    # (one stat: a worker may exit between two reads of /proc)
    _wait_until($START_TIMEOUT, sub {
        !grep { my $st = pid_alive($_) && _proc_stat($_); $st && $st->{ppid} == $master } keys %old
    });
    return 1;
}

sub stop_nginx {
    my ($self) = @_;
    my $pid = $self->{nginx_pid} || $self->nginx_pid;
    return 1 unless $pid;
    my @kids = _children_of($pid);
    if (pid_alive($pid)) {
        kill 'QUIT', $pid;
        if (!_wait_until($START_TIMEOUT, sub { !pid_alive($pid) })) {
            Test::Builder->new->diag("PatTest: nginx master $pid did not quit in ${START_TIMEOUT}s, sending KILL");
            kill 'KILL', $pid;
            _wait_until($START_TIMEOUT, sub { !pid_alive($pid) });
        }
    }
    # orphans (should not happen, but never leak processes)
    for my $k (@kids) {
        kill 'KILL', $k if pid_alive($k);
    }
    _wait_until($START_TIMEOUT, sub { !grep { pid_alive($_) } @kids });
    $self->{nginx_pid} = undef;
    return 1;
}

sub _kill_nginx_hard {
    my ($self) = @_;
    my $c   = $self->read_file('nginx.pid');
    my $pid = $self->{nginx_pid} || (defined $c && $c =~ /(\d+)/ ? $1 : undef);
    return unless $pid;
    my @kids = _children_of($pid);
    kill 'KILL', $pid, @kids;
    _wait_until(2, sub { !grep { pid_alive($_) } $pid, @kids });
    $self->{nginx_pid} = undef;
}

# ---------------------------------------------------------------------------
# HTTP

sub url {
    my ($self, $path, $port) = @_;
    $path = '/' unless defined $path;
    $path = "/$path" unless $path =~ m{^/};
    return 'http://127.0.0.1:' . ($port || $self->port) . $path;
}

sub _ua {
    return HTTP::Tiny->new(
        timeout => 10, keep_alive => 0, max_redirect => 0,
        proxy => undef, http_proxy => undef, https_proxy => undef,
        agent => 'PatTest/0.01',
    );
}

sub http {
    my ($self, $method, $path, $o) = @_;
    $o ||= {};
    my %args;
    $args{headers} = { %{ $o->{headers} } } if $o->{headers};
    $args{content} = $o->{content} if exists $o->{content};
    my $res = _ua()->request($method, $self->url($path, $o->{port}), \%args);
    $res->{json} = undef;
    my $ct = $res->{headers}{'content-type'};
    if (defined $ct && $ct =~ m{^application/json\s*(?:;|\z)}i && defined $res->{content} && length $res->{content}) {
        $res->{json} = eval { JSON::PP->new->utf8->allow_nonref->decode($res->{content}) };
    }
    PatOpenAPI::record($self->{conf}, $method, $path, $res);
    return $res;
}

sub get    { my ($s, $p, $h) = @_; $s->http('GET',    $p, { headers => $h || {} }) }
sub delete { my ($s, $p, $h) = @_; $s->http('DELETE', $p, { headers => $h || {} }) }

sub post_json {
    my ($self, $path, $data, $h) = @_;
    my %h = %{ $h || {} };
    $h{'Content-Type'} = 'application/json' unless grep { lc $_ eq 'content-type' } keys %h;
    my $body = ref $data ? JSON::PP->new->utf8->canonical->encode($data)
             : defined $data ? $data : '';
    return $self->http('POST', $path, { headers => \%h, content => $body });
}

# raw_http($bytes_or_arrayref_of_chunks, %o)
#   port => ..., timeout => 5, close_after_send => 1 (close right after sending,
#   returns ''), shutdown_write => 1 (half-close after sending, then read),
#   pause => secs (between chunks when $bytes is an arrayref)
sub raw_http {
    my ($self, $bytes, %o) = @_;
    my $timeout = defined $o{timeout} ? $o{timeout} : 5;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $o{port} || $self->port,
        Proto => 'tcp', Timeout => $timeout,
    ) or die "raw_http connect: $!";
    binmode $sock;
    my @chunks = ref $bytes eq 'ARRAY' ? @$bytes : ($bytes);
    my $first = 1;
    for my $chunk (@chunks) {
        Time::HiRes::sleep($o{pause}) if !$first && $o{pause};
        $first = 0;
        my $off = 0;
        while ($off < length $chunk) {
            my $n = syswrite($sock, $chunk, length($chunk) - $off, $off);
            if (!defined $n) {
                last if $!{EPIPE} || $!{ECONNRESET};
                die "raw_http write: $!";
            }
            $off += $n;
        }
    }
    if ($o{close_after_send}) {
        close $sock;
        return '';
    }
    shutdown($sock, 1) if $o{shutdown_write};
    my $sel = IO::Select->new($sock);
    my $end = Time::HiRes::time() + $timeout;
    my $buf = '';
    while (1) {
        my $left = $end - Time::HiRes::time();
        last if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last if !defined $n || $n == 0;
    }
    close $sock;
    return $buf;
}

# ---------------------------------------------------------------------------
# error log

sub error_log {
    my ($self) = @_;
    my $c = $self->read_file('error.log');
    return defined $c ? $c : '';
}

our @BAD_LOG = (
    qr/\[alert\]/, qr/\[crit\]/, qr/\[emerg\]/, qr/exited on signal/,
    qr/AddressSanitizer/, qr/runtime error:/, qr/LeakSanitizer/,
);

sub _allow_list {
    my (@a) = @_;
    my @allow;
    while (@a) {
        my $x = shift @a;
        if (defined $x && !ref $x && $x eq 'allow') {
            my $v = shift @a;
            push @allow, ref $v eq 'ARRAY' ? @$v : ($v);
        }
        elsif (ref $x eq 'ARRAY') { push @allow, @$x }
        elsif (defined $x)        { push @allow, ref $x ? $x : qr/\Q$x\E/ }
    }
    return @allow;
}

# list of offending lines of error.log (or of text => $string)
sub error_log_problems {
    my ($self, @a) = @_;
    my $text;
    if (@a >= 2 && !ref $a[0] && $a[0] eq 'text') { (undef, $text) = splice @a, 0, 2 }
    $text = $self->error_log unless defined $text;
    my @allow = _allow_list(@a);
    my @bad;
    for my $line (split /\n/, $text) {
        next unless grep { $line =~ $_ } @BAD_LOG;
        next if grep { $line =~ $_ } @allow;
        push @bad, $line;
    }
    return @bad;
}

sub check_error_log {
    my ($self, @a) = @_;
    my $tb  = Test::Builder->new;
    my @bad = $self->error_log_problems(@a);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $tb->ok(!@bad, 'error.log has no alerts/crashes');
    if (!$ok) {
        my @show = @bad > 20 ? @bad[0 .. 19] : @bad;
        $tb->diag("offending error.log lines (" . scalar(@bad) . "):\n" . join("\n", @show));
        # a sanitizer report is diagnosable only with its stacks: a CI
        # run keeps no temp dir, so the whole report goes to the output
        my $text = $self->error_log;
        my @reports = $text =~ /(^==\d+==(?:ERROR|WARNING): \w+Sanitizer.*?^SUMMARY: [^\n]*)/msg;
        push @reports, $text =~ /(^[^\n]*runtime error:[^\n]*(?:\n\s+#\d+[^\n]*)*)/mg;
        for my $rep (@reports[0 .. ($#reports > 2 ? 2 : $#reports)]) {
            my @l = split /\n/, $rep;
            @l = (@l[0 .. 199], '... (cut)') if @l > 200;
            $tb->diag("sanitizer report:\n" . join("\n", @l));
        }
    }
    return $ok;
}

# ---------------------------------------------------------------------------
# teardown

sub done {
    my ($self, @a) = @_;
    return 1 if $self->{done};
    $self->{done} = 1;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->stop_nginx;
    $self->check_error_log(@a) if $self->{nginx_started};
    $self->_stop_all_redis;
    return 1;
}

sub _stop_all_redis {
    my ($self) = @_;
    for my $r (@{ $self->{redises} || [] }) {
        eval { $self->stop_redis($r); 1 } or warn "stop_redis: $@";
    }
}

# teardown only, no tests
sub _teardown {
    my ($self) = @_;
    return unless $self->{owner_pid} && $self->{owner_pid} == $$;
    return if $self->{torn_down}++;
    local ($?, $!, $@);
    eval { $self->stop_nginx; 1 } or eval { $self->_kill_nginx_hard };
    $self->_stop_all_redis;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    eval { $self->_teardown };
}

package PatTest::RedisError;

use overload '""' => sub { "RedisError: $_[0]{msg}" }, fallback => 1;

sub msg { $_[0]{msg} }

1;
