# An exhausted pool in the API answers 500 "internal", never a client
# error.  The allocations are made to fail by the fault hook that only the
# sanitizer build has (./build.sh asan): a request header
# "X-Auth-Pat-Fault: POINT" fails the allocation at POINT.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatApi qw(api_env api);

my $so = PatTest::module_path();
open my $fh, '<:raw', $so or die "$so: $!";
my $bin = do { local $/; <$fh> };
close $fh;
plan skip_all => 'the fault hook is built only into ./build.sh asan'
    unless index($bin, 'http_x_auth_pat_fault') >= 0;

my $t = api_env();

sub internal_ok {
    my ($r, $name) = @_;
    is($r->{status}, 500, "$name: 500");
    is(ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef, 'internal',
       "$name: error internal") or diag $r->{content};
}

# the list query: the decoded search term needs a buffer
my $fault = { 'X-Auth-Pat-Fault' => 'query' };
internal_ok(api($t, GET => '?search_term=x', user => 'alice',
                headers => $fault), 'list, no memory for the query');
internal_ok(api($t, GET => '', user => 'alice', headers => $fault),
            'list without a query, no memory for it');
is(api($t, GET => '?search_term=x', user => 'alice')->{status}, 200,
   'list: 200 without the fault');

# the token id of the route, lowercased into a copy
my $id = '0B0D6F4C-1A5E-4C47-9F6B-2D3E4F5A6B7C';
$fault = { 'X-Auth-Pat-Fault' => 'id' };
internal_ok(api($t, DELETE => "/$id", user => 'alice', headers => $fault),
            'revoke, no memory for the id');
internal_ok(api($t, POST => "/$id/rotate", user => 'alice',
                headers => $fault), 'rotate, no memory for the id');
is(api($t, DELETE => "/$id", user => 'alice')->{status}, 404,
   'revoke: 404 without the fault');

# a point that does not exist fails nothing
is(api($t, POST => '', user => 'alice', body => { name => 'n' },
       headers => { 'X-Auth-Pat-Fault' => 'nowhere' })->{status}, 201,
   'create: an unknown fault point fails nothing');

$t->done;
done_testing;
