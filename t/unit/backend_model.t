use lib 't/lib'; use MLGuard::Unit; MLGuard::Unit::run('backend_model');
