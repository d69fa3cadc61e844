# Mutual TLS for service-to-service callers: ml_guard_auth mtls and
# ml_guard_mtls_roles, with a private CA (valid, other CA, none, revoked),
# and subject CNs that must not become a principal (control characters
# would reach the headers sent upstream and the logs).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key);
use MLGuard::PKI;

my $t = MLGuard::Test->new;
my $ca = MLGuard::PKI->new($t->dir . '/ca', 'ml-guard test CA');
my $other = MLGuard::PKI->new($t->dir . '/other', 'some other CA');
my ($srv_cert, $srv_key) = $ca->issue('localhost', server => 1);
my %client;
$client{$_} = [$ca->issue($_)] for 'billing.internal', 'Batch Scoring', 'unlisted.internal', 'revoked.internal';
$client{foreign} = [$other->issue('billing.internal')];
my %bad_cn = (
    'CR LF'      => "evil\r\nX-Injected: yes",
    'LF'         => "evil\nX-Injected: yes",
    'tab'        => "tab\there",
    'DEL'        => "del\x7fete",
    'NEL (C1)'   => "nel\xc2\x85line",
);
for my $what (sort keys %bad_cn) {
    $client{$what} = [$ca->issue($bad_cn{$what}, file => "bad-$what", utf8 => 1)];
}
$client{utf8} = [$ca->issue("Z\xc3\xbcrich scoring", file => 'zurich', utf8 => 1)];
$ca->revoke($client{'revoked.internal'}[0]);
my $crl = $ca->crl;

my $key = random_key();
$t->write_file('keys.txt', "alice " . sha256_hex_of($key) . " predict\n");
$t->write_file('mtls-roles.txt', "billing.internal predict,admin\nBatch Scoring predict\nrevoked.internal predict\n");
$t->start_echo;
$t->start_nginx(listen => 'ssl', server => qq{
    ssl_certificate $srv_cert;
    ssl_certificate_key $srv_key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate @{[ $ca->cert ]};
    ssl_verify_client optional;
    ssl_crl $crl;

    ml_guard_mtls_roles %%DIR%%/mtls-roles.txt;
    proxy_set_header X-Principal \$ml_guard_principal;
    proxy_set_header X-Method \$ml_guard_auth_method;
    proxy_set_header X-Roles \$ml_guard_roles;

    location /svc {
        ml_guard on;
        ml_guard_auth mtls;
        ml_guard_roles predict;
        proxy_pass http://%%ECHO%%;
    }
    location /open {
        ml_guard on;
        ml_guard_auth mtls;
        proxy_pass http://%%ECHO%%;
    }
    location /either {
        ml_guard on;
        ml_guard_auth api_key mtls;
        ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_roles predict;
        proxy_pass http://%%ECHO%%;
    }
});

sub with_cert {
    my ($name, $path, %h) = @_;
    my ($c, $k) = @{ $client{$name} };
    return $t->request(GET => $path, ssl => { SSL_cert_file => $c, SSL_key_file => $k }, headers => \%h);
}

my $r = with_cert('billing.internal', '/svc');
is $r->{status}, 200, 'valid client certificate with a role is allowed';
is $r->{headers}{'x-echo-h-x-principal'}, 'billing.internal', 'principal is the subject CN';
is $r->{headers}{'x-echo-h-x-method'}, 'mtls', 'auth method mtls';
is $r->{headers}{'x-echo-h-x-roles'}, 'predict,admin', 'roles from ml_guard_mtls_roles';

$r = with_cert('Batch Scoring', '/svc');
is $r->{status}, 200, 'a CN with a blank';

$r = with_cert('unlisted.internal', '/svc');
is $r->{status}, 403, 'valid certificate without roles: 403';
is $r->{json}{reason}, 'role_denied', 'role_denied';

$r = $t->request(GET => '/svc');
is $r->{status}, 401, 'no certificate: 401';
is $r->{json}{reason}, 'missing_credentials', 'missing_credentials';

$r = with_cert('foreign', '/svc');
is $r->{status}, 401, 'certificate from another CA: 401';
is $r->{json}{reason}, 'invalid_client_certificate', 'invalid_client_certificate';
like $r->{headers}{'content-type'}, qr{application/problem\+json}, 'as problem+json';

$r = with_cert('revoked.internal', '/svc');
is $r->{status}, 401, 'revoked certificate (ssl_crl): 401';
is $r->{json}{reason}, 'invalid_client_certificate', 'revoked: invalid_client_certificate';

$r = $t->request(GET => '/either', headers => {'X-API-Key' => $key});
is $r->{status}, 200, 'API key accepted where api_key and mtls are';
$r = with_cert('billing.internal', '/either');
is $r->{status}, 200, 'certificate accepted where api_key and mtls are';
$r = with_cert('billing.internal', '/either', 'X-API-Key' => random_key());
is $r->{status}, 401, 'every presented credential must be valid (bad key, good certificate): 401';
is $r->{json}{reason}, 'invalid_api_key', 'bad key next to a good certificate: invalid_api_key';

# a CN that is not a usable identity: no principal, no upstream request
for my $what (sort keys %bad_cn) {
    $r = with_cert($what, '/open');
    is $r->{status}, 401, "CN with $what: 401";
    is $r->{json}{reason}, 'invalid_client_certificate', "CN with $what: invalid_client_certificate";
    ok !exists $r->{headers}{'x-echo-h-x-injected'}, "CN with $what: nothing injected upstream";
    ok !exists $r->{headers}{'x-echo-h-x-principal'}, "CN with $what: upstream not called";
}
my $log = $t->read_file('logs/error.log');
like $log, qr/evil\\x0D\\x0AX-Injected: yes/, 'the refused CN is logged escaped';
unlike $log, qr/\r|X-Injected: yes\n|^X-Injected/m, 'no raw CR or LF of the CN in the error log';
unlike $log, qr/\x7f|\xc2\x85/, 'no raw DEL or C1 byte in the error log';

$r = with_cert('utf8', '/open');
is $r->{status}, 200, 'a CN with non-ASCII letters (valid UTF-8) is accepted';
is $r->{headers}{'x-echo-h-x-principal'}, "Z\xc3\xbcrich scoring", 'as its UTF-8 bytes';

$t->stop;
done_testing;
