#!/usr/bin/perl

# Builds the C unit tests (t/unit/pat_token_test.c, which includes
# src/pat_token.c to reach its static functions) and passes their TAP
# output through unchanged.
#
# Environment:
#   CC            compiler (default "cc"), may contain extra words
#   PAT_SANITIZE  if set, build with ASan + UBSan (use with CC=clang)

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Spec;
use File::Temp qw(tempdir);
use FindBin;

$| = 1;

my $root = abs_path(File::Spec->catdir($FindBin::RealBin, File::Spec->updir));
my $test = File::Spec->catfile($root, 't', 'unit', 'pat_token_test.c');
my $inc  = File::Spec->catdir($root, 'src');

my $dir = tempdir('pat_unit_XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bin = File::Spec->catfile($dir, 'pat_token_test');
my $log = File::Spec->catfile($dir, 'cc.log');

my @cc = split ' ', (defined $ENV{CC} && $ENV{CC} ne '' ? $ENV{CC} : 'cc');
my @cflags = qw(-std=c99 -Wall -Wextra -Werror -O1 -g);

if ($ENV{PAT_SANITIZE}) {
    push @cflags, '-fsanitize=address,undefined', '-fno-omit-frame-pointer',
                  '-fno-sanitize-recover=all';
}

my @cmd = (@cc, @cflags, "-I$inc", '-o', $bin, $test, '-lcrypto');

# run the compiler with stdout and stderr captured in $log

my $rc;
{
    open my $save_out, '>&', \*STDOUT or die "dup STDOUT: $!";
    open my $save_err, '>&', \*STDERR or die "dup STDERR: $!";
    open STDOUT, '>', $log or die "open $log: $!";
    open STDERR, '>&', \*STDOUT or die "redirect STDERR: $!";

    $rc = system { $cmd[0] } @cmd;

    open STDOUT, '>&', $save_out or die "restore STDOUT: $!";
    open STDERR, '>&', $save_err or die "restore STDERR: $!";
}

if ($rc != 0) {
    my $out = '';
    if (open my $fh, '<', $log) {
        local $/;
        $out = <$fh> // '';
        close $fh;
    }
    $out .= "system() failed: $!\n" if $rc == -1;

    print "1..1\n";
    print "not ok 1 - compile pat_token_test.c\n";
    print "# $_\n" for ("@cmd", split /\n/, $out);
    exit 1;
}

# pass the test program's TAP through verbatim; keep the temp dir alive
# until it has finished so that File::Temp can clean up afterwards

$ENV{ASAN_OPTIONS} //= 'detect_leaks=1:abort_on_error=0';
$ENV{UBSAN_OPTIONS} //= 'print_stacktrace=1';

open my $tap, '-|', $bin or die "run $bin: $!";
print while <$tap>;
close $tap;

my $status = $?;

if ($status & 127) {
    print "# test program killed by signal ", ($status & 127), "\n";
    exit 1;
}

exit($status >> 8);
