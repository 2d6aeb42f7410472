using System.Net;
using Microsoft.AspNetCore.Builder;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests;

public class AdminListenerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Healthz_answers_200_on_the_admin_listener()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var admin = TestClients.Http1(proxy.AdminUri);

        using var response = await admin.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Readyz_answers_200_once_the_proxy_has_started()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var admin = TestClients.Http1(proxy.AdminUri);

        using var response = await admin.GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ready\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Metrics_serves_Prometheus_text_with_the_servers_metrics()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);
        using var admin = TestClients.Http1(proxy.AdminUri);
        (await client.GetAsync("/hello")).Dispose();

        string metrics = string.Empty;
        await Eventually.UntilAsync(
            async () =>
            {
                using var response = await admin.GetAsync("/metrics");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
                metrics = await response.Content.ReadAsStringAsync();
                return metrics.Contains("http_server_request_duration", StringComparison.Ordinal) &&
                       metrics.Contains("kestrel_", StringComparison.Ordinal);
            },
            "/metrics to show the HTTP server and Kestrel metrics");

        Assert.Contains("# TYPE ", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_paths_on_the_admin_listener_are_404_and_never_proxied()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var admin = TestClients.Http1(proxy.AdminUri);

        using var response = await admin.GetAsync("/hello");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(backend.Requests);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    [InlineData("/connections")]
    public async Task Admin_paths_on_the_public_listener_are_proxied_to_the_backend_like_any_path(string path)
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { H2cEndpoint = true, Output = output });

        foreach (var (client, version) in new[] { (TestClients.Http1(proxy.PublicUri), "HTTP/1.1"), (TestClients.H2c(proxy.H2cUri!), "HTTP/2") })
        {
            using (client)
            {
                using var response = await client.GetAsync(path);
                var body = await response.Content.ReadAsStringAsync();

                // The backend has no such endpoint: its 404 comes back, not the admin answer.
                Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
                Assert.DoesNotContain("ok", body, StringComparison.Ordinal);
                Assert.DoesNotContain("ready", body, StringComparison.Ordinal);
                Assert.DoesNotContain("# TYPE", body, StringComparison.Ordinal);
                Assert.Contains(backend.RequestsFor(path), r => r.Protocol == "HTTP/1.1");
                output.WriteLine($"{version} {path}: {(int)response.StatusCode}");
            }
        }

        Assert.Equal(2, backend.RequestsFor(path).Count);
    }

    [Fact]
    public async Task Admin_paths_on_the_public_listener_return_whatever_the_backend_answers()
    {
        await using var backend = await TestBackend.StartAsync(new()
        {
            Output = output,
            Map = app => app.MapGet("/healthz", () => "the backend's own healthz"),
        });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        Assert.Equal("the backend's own healthz", await client.GetStringAsync("/healthz"));
    }

    [Fact]
    public async Task Admin_paths_on_the_public_listener_without_a_matching_route_are_404_from_the_proxy()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = new ProxyConfig().Cluster("backend", backend.BaseUri).Route("hello", "/hello", "backend");
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        foreach (var path in new[] { "/healthz", "/readyz", "/metrics" })
        {
            using var response = await client.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal(string.Empty, await response.Content.ReadAsStringAsync());
        }

        Assert.Empty(backend.Requests);
    }
}
