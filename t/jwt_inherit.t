# JWT directives inherit from http to server to location, and an inner level
# overrides one directive without dropping the others.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(random_key);
use MLGuard::JWT;

my $t = MLGuard::Test->new;
my $k = MLGuard::JWT->new($t->dir);
my $outer = random_key(32);
my $inner = random_key(32);
$t->write_file('outer.secret', $outer);
$t->write_file('inner.secret', $inner);

$t->start_echo;
my $pass = 'proxy_set_header X-Roles $ml_guard_roles; proxy_pass http://%%ECHO%%;';
$t->start_nginx(
    http => 'ml_guard_jwt_key %%DIR%%/outer.secret; ml_guard_jwt_issuer https://outer.test;
             ml_guard_jwt_roles_claim realm_access.roles; ml_guard_jwt_leeway 30s;',
    server => qq{
        ml_guard_jwt_audience ml-api;
        location /plain { ml_guard on; $pass }
        location /issuer { ml_guard on; ml_guard_jwt_issuer https://inner.test; $pass }
        location /key { ml_guard on; ml_guard_jwt_key %%DIR%%/inner.secret; $pass }
        location /roles { ml_guard on; ml_guard_jwt_roles_claim scope; ml_guard_roles write; $pass }
        location /exp { ml_guard on; ml_guard_jwt_require_exp off; ml_guard_jwt_cache off; $pass }
    });

sub tok {
    my ($secret, %c) = @_;
    return $k->token(alg => 'HS256', secret => $secret,
                     claims => { iss => 'https://outer.test', aud => 'ml-api', %c });
}
sub call {
    my ($path, $token) = @_;
    my $res = $t->request(GET => $path, headers => { Authorization => "Bearer $token" });
    return $res->{status} . ($res->{json} ? ' ' . $res->{json}{reason} : '');
}

is call('/plain', tok($outer)), 200, 'http key, issuer and server audience apply';
is call('/plain', tok($outer, aud => 'other')), '401 token_claims', 'server-level audience enforced';
is call('/plain', tok($outer, iss => 'https://inner.test')), '401 token_claims', 'http-level issuer enforced';
is call('/plain', tok($outer, exp => time - 10)), 200, 'http-level leeway 30s inherited';
is call('/plain', tok($inner)), '401 invalid_token', 'inner secret not valid outside /key';

is call('/issuer', tok($outer, iss => 'https://inner.test')), 200, 'location issuer overrides';
is call('/issuer', tok($outer)), '401 token_claims', 'outer issuer no longer accepted there';
is call('/issuer', tok($outer, iss => 'https://inner.test', aud => 'x')), '401 token_claims',
    'audience still inherited next to the overridden issuer';

is call('/key', tok($inner)), 200, 'location key overrides';
is call('/key', tok($outer)), '401 invalid_token', 'outer key not used there';
is call('/key', tok($inner, iss => 'https://inner.test')), '401 token_claims', 'issuer still inherited next to the key';

my $res = $t->request(GET => '/plain', headers => { Authorization => 'Bearer '
    . tok($outer, realm_access => { roles => ['read'] }, scope => 'write') });
is $res->{headers}{'x-echo-h-x-roles'}, 'read', 'roles claim path inherited from http';
is call('/roles', tok($outer, scope => 'read write')), 200, 'location roles claim overrides';
like call('/roles', tok($outer, realm_access => { roles => ['write'] })), qr/^403 role_denied/,
    'outer roles path not used there';

is call('/exp', tok($outer, exp => undef)), 200, 'require_exp off at the location';
is call('/plain', tok($outer, exp => undef)), '401 token_claims', 'exp still required elsewhere';

$t->stop;
done_testing();
