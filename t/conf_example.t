# The shipped example configuration passes `nginx -t` with our module.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test;

my $t = MLGuard::Test->new;
my $root = MLGuard::Test::root();
my $conf = $t->read_file("$root/conf/nginx.conf");
ok length $conf, 'conf/nginx.conf exists';

$conf =~ s/^load_module .*\n//m;
$conf =~ s{/etc/nginx/ml-guard/api-keys}{$root/conf/api-keys.example}g;
$conf =~ s{/etc/nginx/ml-guard/}{$root/conf/}g;
$conf =~ s{/var/log/nginx/}{$t->dir . '/logs/'}ge;
$conf =~ s{listen 8080;}{'listen 127.0.0.1:' . $t->port . ';'}e;
$conf =~ s{worker_processes auto;}{};
my $temps = join '', map { "    ${_}_temp_path " . $t->dir . "/tmp/$_;\n" }
    qw(client_body proxy fastcgi uwsgi scgi);
$conf =~ s/^http \{\n/http {\n$temps/m;

my ($ok, $out) = $t->nginx_test(conf => $conf);
ok $ok, 'example configuration passes nginx -t' or diag $out;

done_testing;
