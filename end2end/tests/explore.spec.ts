import { test } from "@playwright/test";
test("explore", async ({ page }) => {
  page.on("console", (m) => console.log("console:", m.text()));
  page.on("pageerror", (e) => console.log("pageerror:", e.message));
  await page.goto("/login");
  await page.getByLabel("Username").fill("demo");
  await page.getByLabel("Password").fill("demo-e2e-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("link", { name: "Demo abdomen phantom (CT, int16)" }).click();
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.waitForTimeout(3000);
  await page.screenshot({ path: "/tmp/explore/case.png", fullPage: true });
  console.log(await page.evaluate(() => JSON.stringify((window as any).__seglab)));
});
