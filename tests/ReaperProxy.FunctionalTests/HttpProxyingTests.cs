using System.Net;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests;

public class HttpProxyingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_GET_is_proxied_to_the_backend()
    {
        await using var backend = await TestBackend.StartAsync(new() { Name = "alpha", Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        using var response = await client.GetAsync("/hello?x=1");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("hello from alpha (HTTP/1.1)", await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(backend.RequestsFor("/hello"));
        Assert.Equal("GET", seen.Method);
        Assert.Contains(proxy.PublicUri.Authority, seen.Headers["X-Forwarded-Host"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_POST_body_is_proxied_to_the_backend_and_its_answer_back()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);
        var body = "payload " + new string('x', 100_000);

        using var response = await client.PostAsync("/post", new StringContent(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        Assert.Equal("POST", Assert.Single(backend.RequestsFor("/post")).Method);
    }

    [Fact]
    public async Task A_path_without_a_route_is_404_from_the_proxy_and_never_reaches_a_backend()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = new ProxyConfig().Cluster("backend", backend.BaseUri).Route("hello", "/hello", "backend");
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        using var response = await client.GetAsync("/elsewhere");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(backend.Requests);
    }

    [Fact]
    public async Task A_request_from_an_h2c_client_is_proxied_to_an_HTTP_1_1_backend()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { H2cEndpoint = true, Output = output });
        using var h2c = TestClients.H2c(proxy.H2cUri!);
        using var http1 = TestClients.Http1(proxy.PublicUri);

        using var viaH2c = await h2c.GetAsync("/hello");
        using var viaHttp1 = await http1.GetAsync("/hello");

        Assert.Equal(HttpVersion.Version20, viaH2c.Version);
        Assert.Equal("hello from backend (HTTP/1.1)", await viaH2c.Content.ReadAsStringAsync());
        Assert.Equal(HttpVersion.Version11, viaHttp1.Version);
        Assert.Equal(HttpStatusCode.OK, viaHttp1.StatusCode);
    }

    [Fact]
    public async Task A_request_is_proxied_to_an_h2c_only_backend_over_HTTP_2()
    {
        await using var backend = await TestBackend.StartAsync(new() { Protocol = BackendProtocol.H2c, Output = output });
        var config = new ProxyConfig().Cluster("backend", backend.BaseUri, http2Only: true).Route("all", "{**catch-all}", "backend");
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        using var response = await client.GetAsync("/hello");

        Assert.Equal("hello from backend (HTTP/2)", await response.Content.ReadAsStringAsync());
    }
}
