// Boost.URL's compiled part: Debian's Boost 1.81 ships it header-only (no
// libboost_url), so it is built once here, in the library that parses query
// strings (actors/query_api.cpp).
#include <boost/url/src.hpp>
