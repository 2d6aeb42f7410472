using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Observability;

/// <summary>The Prometheus config, alert rules (with promtool's rule unit tests), the Grafana dashboard and the Kubernetes manifests (deploy/k8s) stay valid.</summary>
public sealed class DeployChecksTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("deploy/prometheus/check.sh")]
    [InlineData("deploy/grafana/check.sh")]
    [InlineData("deploy/k8s/check.sh")]
    public async Task Deploy_check_passes(string script)
    {
        ExternalTool.Require("promtool");
        ExternalTool.Require("prometheus");
        var (exitCode, text) = await ExternalTool.RunAsync("bash", script, ExternalTool.RepositoryRoot(), TimeSpan.FromMinutes(4));
        output.WriteLine(text);
        Assert.True(exitCode == 0, $"{script} exited {exitCode}:\n{text}");
    }
}

/// <summary>
/// The container image builds from deploy/Dockerfile and runs (read-only, non-root, WebSockets, SIGTERM), and
/// deploy/compose.yaml is valid: deploy/container/check.sh. Alone, after the parallel tests: it builds images
/// (about a minute of both cores, two more the first time, for the stand-in base images) and would
/// otherwise slow the timing-sensitive tests beside it.
/// </summary>
[Collection(ContainerCheckCollection.Name)]
public sealed class ContainerCheckTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Container_check_passes()
    {
        var script = "deploy/container/check.sh";
        ExternalTool.Require("podman", "podman");
        ExternalTool.Require("buildah", "buildah");
        ExternalTool.Require("docker-compose", "docker-compose");
        var (exitCode, text) = await ExternalTool.RunAsync("bash", script, ExternalTool.RepositoryRoot(), TimeSpan.FromMinutes(15));
        output.WriteLine(text);
        Assert.True(exitCode == 0, $"{script} exited {exitCode}:\n{text}");
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ContainerCheckCollection
{
    public const string Name = "container check (not in parallel)";
}
