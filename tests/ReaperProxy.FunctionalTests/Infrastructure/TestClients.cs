using System.Net;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>HTTP clients for the tests: never through a system proxy, no redirects, bounded time.</summary>
public static class TestClients
{
    /// <summary>An HTTP/1.1 client for <paramref name="baseUri"/>.</summary>
    public static HttpClient Http1(Uri baseUri) => Create(baseUri, HttpVersion.Version11);

    /// <summary>An HTTP/2 client with prior knowledge (h2c) for a cleartext <paramref name="baseUri"/>.</summary>
    public static HttpClient H2c(Uri baseUri) => Create(baseUri, HttpVersion.Version20);

    /// <summary>A handler that ignores any system proxy (HTTP_PROXY and the like).</summary>
    public static SocketsHttpHandler Handler() => new()
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    private static HttpClient Create(Uri baseUri, Version version) => new(Handler())
    {
        BaseAddress = baseUri,
        DefaultRequestVersion = version,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = Eventually.DefaultTimeout,
    };
}
