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
