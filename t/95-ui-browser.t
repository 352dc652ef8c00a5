# The self-service page (auth_pat_ui) in a real browser: Debian's chromium,
# driven by playwright-core from t/ui/ui-driver.mjs, against a real nginx
# and Redis.  The driver prints one JSON line per check; this test turns
# each into ok()/is(), and answers the driver's requests to stop and start
# Redis between its steps.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
binmode($_, ":encoding(UTF-8)") for Test::More->builder->output, Test::More->builder->failure_output, Test::More->builder->todo_output;
use PatTest;
use JSON::PP ();
use MIME::Base64 ();
use Time::HiRes ();
use File::Spec;

my $root     = PatTest->repo_root;
my $chromium = $ENV{PAT_CHROMIUM} || '/usr/bin/chromium';
my $node     = $ENV{PAT_NODE} || 'node';
my $driver   = File::Spec->catfile($root, 't', 'ui', 'ui-driver.mjs');
BAIL_OUT("$chromium is missing: apt-get install -y chromium") unless -x $chromium;
BAIL_OUT("t/ui/node_modules is missing: (cd t/ui && npm ci)")
    unless -d File::Spec->catdir($root, 't', 'ui', 'node_modules', 'playwright-core')
        && -d File::Spec->catdir($root, 't', 'ui', 'node_modules', 'axe-core');
BAIL_OUT("node is missing: apt-get install -y nodejs")
    unless system("$node --version >/dev/null 2>&1") == 0;

my $user     = 'alice';
my $password = 'correct horse';

# The page's locations: /tokens/ talks to the default API
# (/v1/personal-access-tokens), /open-tokens/ to /v2/tokens (api=).
my $ui_location = <<'EOF';
    location /tokens/ {
        auth_basic "pat";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat_ui;
    }
    location /open-tokens/ {
        auth_basic "pat";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat_ui api=/v2/tokens;
    }
EOF

my $t = PatTest->new;
my $redis = $t->start_redis(aof => 1);
$t->write_file('htpasswd', "$user:{PLAIN}$password\nbob:{PLAIN}$password\n");
$t->nginx_conf(http => <<"EOF2");
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
$ui_location
    location /v1/personal-access-tokens {
        auth_basic "pat";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat_api;
        auth_pat_api_user \$remote_user;
        auth_pat_scopes_allowed read write admin;
        auth_pat_default_lifetime 30d;
        auth_pat_max_lifetime 365d;
    }
    # no scope list, no lifetimes: free-text scopes, "no expiration"
    location /v2/tokens {
        auth_basic "pat";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat_api;
        auth_pat_api_user \$remote_user;
    }
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
}
EOF2
$t->start_nginx;

# 60 tokens through the API, as alice by Basic: 54 active, 3 revoked,
# 3 expired, with distinct names ("seed 01" .. "seed 60")
my $basic = 'Basic ' . MIME::Base64::encode_base64("$user:$password", '');
my $json  = JSON::PP->new->utf8->canonical;
sub iso_in {
    my ($ms) = @_;
    my $t = Time::HiRes::time() * 1000 + $ms;
    my @g = gmtime(int($t / 1000));
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ',
                   $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0], $t % 1000);
}
my @seeded;
for my $i (1 .. 60) {
    my %body = (name => sprintf('seed %02d', $i), scopes => ['read']);
    $body{expiresAt} = iso_in($i <= 3 ? 1500 : $i * 86400_000);
    my $r = $t->http(POST => '/v1/personal-access-tokens', { headers => {
        Authorization => $basic, 'Content-Type' => 'application/json' },
        content => $json->encode(\%body) });
    is($r->{status}, 201, "seed token $i created") or diag $r->{content};
    push @seeded, $r->{json}{data};
}
for my $tok (@seeded[3 .. 5]) {
    my $r = $t->http(DELETE => "/v1/personal-access-tokens/$tok->{id}",
                     { headers => { Authorization => $basic } });
    is($r->{status}, 200, "seed token $tok->{name} revoked");
}
Time::HiRes::sleep(1.6);   # seed 01 .. 03 expire

# run the driver, answering its "need" lines
my $shots = $t->path('screenshots');
mkdir $shots;
my %need = (
    'redis-down' => sub { $t->stop_redis($redis) },
    'redis-up'   => sub { $t->restart_redis($redis) },
);
$ENV{PAT_UI_BASE}     = 'http://127.0.0.1:' . $t->port;
$ENV{PAT_UI_PATH}     = '/tokens/';
$ENV{PAT_UI_PATH_V2}  = '/open-tokens/';
$ENV{PAT_UI_USER}     = $user;
$ENV{PAT_UI_USER2}    = 'bob';
$ENV{PAT_UI_PASSWORD} = $password;
$ENV{PAT_UI_OUT}      = $shots;
$ENV{PAT_CHROMIUM}    = $chromium;
# The driver runs in its own process group (chromium's processes are its
# children): a run over the time limit is killed whole, and fails.
my $limit = ($ENV{PAT_UI_TIMEOUT} || 300) * ($ENV{PAT_SANITIZE} ? 3 : 1);
my $pid = open(my $out, '-|') // BAIL_OUT("cannot fork: $!");
if (!$pid) {
    setpgrp(0, 0);
    exec($node, $driver) or die "cannot run $node $driver: $!\n";
}
my $checks = 0;
my $plan;
my $timed_out = 0;
local $SIG{ALRM} = sub {
    $timed_out = 1;
    kill('KILL', -$pid);
};
alarm($limit);
while (my $line = <$out>) {
    chomp $line;
    my $m = eval { $json->decode($line) };
    if (!$m) {
        diag "driver: $line";
        next;
    }
    if (defined $m->{need}) {
        my $do = $need{ $m->{need} } or BAIL_OUT("driver needs unknown step $m->{need}");
        $do->();
        $t->write_file("screenshots/$m->{need}", '');
        next;
    }
    if (defined $m->{plan}) {
        $plan = $m->{plan};
        next;
    }
    if (defined $m->{diag}) {
        diag "driver: $m->{diag}";
        next;
    }
    $checks++;
    if (exists $m->{want}) {
        is($json->encode([$m->{got}]), $json->encode([$m->{want}]), $m->{check});
    }
    else {
        ok($m->{ok}, $m->{check}) or diag $json->encode($m->{got});
    }
}
alarm(0);
close $out;
ok(!$timed_out, "the driver finished within $limit s") or diag "killed the driver's process group after $limit s";
is($?, 0, 'the driver exited 0 (not killed by a signal)');
ok(defined $plan && $plan > 100, 'the driver planned its checks');
is($checks, $plan, 'the driver ran every check it planned');
diag "screenshots: $shots" if $ENV{PAT_KEEP};

$t->done;
done_testing;
