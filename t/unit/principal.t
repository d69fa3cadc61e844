use lib 't/lib'; use MLGuard::Unit; MLGuard::Unit::run('test_principal');
