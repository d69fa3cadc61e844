# Directives inherit http -> server -> location, and inner levels override.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key);

my $t = MLGuard::Test->new;
my %k = map { $_ => random_key() } qw(alice bob);
$t->write_file('keys.txt', "alice " . sha256_hex_of($k{alice}) . " predict\n");
$t->write_file('other.txt', "bob " . sha256_hex_of($k{bob}) . " admin\n");
$t->start_echo;
$t->start_nginx(
    http => q{
        ml_guard on;
        ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_max_body 50;
    },
    server => q{
        ml_guard_roles predict;

        location /inherits { proxy_pass http://%%ECHO%%; }
        location /off { ml_guard off; proxy_pass http://%%ECHO%%; }
        location /other-keys {
            ml_guard_api_keys %%DIR%%/other.txt;
            ml_guard_roles admin;
            ml_guard_max_body 500;
            proxy_pass http://%%ECHO%%;
        }
        location /nested {
            ml_guard_api_key_header X-Outer;
            location /nested/inner { proxy_pass http://%%ECHO%%; }
        }
    });

my $r = $t->request(POST => '/inherits', body => 'x');
is $r->{status}, 401, 'http-level ml_guard on reaches the location';
$r = $t->request(POST => '/inherits', headers => {'X-API-Key' => $k{alice}}, body => 'x');
is $r->{status}, 200, 'http-level key file reaches the location';
$r = $t->request(POST => '/inherits', headers => {'X-API-Key' => $k{alice}}, body => 'x' x 51);
is $r->{status}, 413, 'http-level ml_guard_max_body reaches the location';
$r = $t->request(POST => '/inherits', headers => {'X-API-Key' => $k{bob}}, body => 'x');
is $r->{status}, 401, 'keys of another location do not leak';

$r = $t->request(POST => '/off', body => 'x' x 100);
is $r->{status}, 200, 'location-level ml_guard off overrides http-level on';

$r = $t->request(POST => '/other-keys', headers => {'X-API-Key' => $k{bob}}, body => 'y' x 100);
is $r->{status}, 200, 'location overrides keys, roles (server-level predict) and cap';
$r = $t->request(POST => '/other-keys', headers => {'X-API-Key' => $k{alice}}, body => 'y');
is $r->{status}, 401, 'overridden key file no longer knows alice';

$r = $t->request(GET => '/nested/inner', headers => {'X-Outer' => $k{alice}});
is $r->{status}, 200, 'nested location inherits the header name';
$r = $t->request(GET => '/nested/inner', headers => {'X-API-Key' => $k{alice}});
is $r->{status}, 401, 'and the default header does not count there';

$t->stop;
done_testing;
